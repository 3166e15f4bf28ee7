"""Models, matmuls and a clock whose figures are known by hand, so that the bench is checked against
them rather than against its own arithmetic.

* :class:`FakeClock` replaces ``time.perf_counter`` in :mod:`vast.bench.timing`: a pass takes exactly
  the seconds its model says, so latency, GMAC/s, clips/s and shares are exact.
* :class:`ClockedLinear` is one ``nn.Linear(FEATURES, 400)`` on the flattened clip: ``FEATURES * 400``
  multiply-adds, ``FEATURES * 400 + 400`` parameters, bytes countable by hand.
* :class:`ClockedVast` is the same with a token shift inside (a :class:`TokenShift`) that takes a known
  part of the pass, standing in for a VAST row.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vast.bench import runner, specs, timing
from vast.ops.shift import TokenShift

TINY = (1, 3, 4, 32, 32)
FEATURES = 3 * 4 * 32 * 32  # 12288 values per clip
CLASSES = 400


class FakeClock:
    """A ``perf_counter`` that moves only when a model says a pass took time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ClockedLinear(nn.Module):
    """``Linear(FEATURES, 400)`` on the flattened clip, taking ``seconds`` per clip on ``clock``."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds
        self.proj = nn.Linear(FEATURES, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.clock.advance(self.seconds * x.shape[0])
        return self.proj(x.flatten(1))


class ClockedShift(TokenShift):
    """A token shift (for :func:`vast.bench.shift.shift_calls`) that returns its input, ``seconds`` per clip."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        nn.Module.__init__(self)
        self.clock, self.seconds = clock, seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "meta":
            self.clock.advance(self.seconds * x.shape[0])
        return x


class ClockedVast(ClockedLinear):
    """:class:`ClockedLinear` whose pass of ``seconds`` includes a shift of ``shift_seconds``."""

    def __init__(self, clock: FakeClock, seconds: float, shift_seconds: float) -> None:
        super().__init__(clock, seconds - shift_seconds)
        self.shift = ClockedShift(clock, shift_seconds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.shift(x))


@pytest.fixture
def clock(monkeypatch):
    """The fake clock, installed where the bench times its passes."""
    fake = FakeClock()
    monkeypatch.setattr(timing, "time", fake)
    return fake


@pytest.fixture
def known_models(monkeypatch, clock):
    """Rows whose models are known by hand: ``r3d_18`` is a :class:`ClockedLinear` of 20 ms, ``vast_nano``
    (a VAST name, so its shift is measured) a :class:`ClockedVast` of 20 ms with 5 ms of shift. The
    matmul reference rows take 10 ms (BLAS) and 5 ms (oneDNN) for 1 GMAC: 100 and 200 GMAC/s."""
    models = {
        "r3d_18": lambda: ClockedLinear(clock, 0.020),
        "vast_nano": lambda: ClockedVast(clock, 0.020, 0.005),
    }
    monkeypatch.setattr(specs, "build_module", lambda spec: models[spec.name]())

    def matmuls(device, dtype, size):
        return {"matmul blas": lambda: clock.advance(0.010), "matmul onednn": lambda: clock.advance(0.005)}, 1.0

    monkeypatch.setattr(runner, "matmul_runners", matmuls)
    return models


@pytest.fixture
def fast_settings():
    """Settings for tiny runs: few passes, one thread, no progress bar."""
    from vast.bench import BenchSettings

    def make(**overrides):
        values = dict(warmup=1, repeats=2, throughput_batch=2, throughput_repeats=1, matmul_size=128)
        values.update(progress=False, threads=1)  # one thread: no OpenMP waits on a busy machine
        values.update(overrides)
        return BenchSettings(**values)

    return make
