"""torch.compile against eager on a model whose time is a known sleep."""

import time

import pytest
import torch

from vast import bench
from vast.bench import specs as bench_specs


class SleepyLinear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(3 * 4 * 8 * 8, 16)

    def forward(self, x):
        time.sleep(0.01)  # outside the graph: eager and compiled passes both take at least 10 ms
        return self.proj(x.flatten(1))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Dynamo does not know how to trace")
def test_compile_comparison_reports_latencies_speedup_and_output_difference(monkeypatch, fast_settings):
    monkeypatch.setattr(bench_specs, "build_module", lambda spec: SleepyLinear())
    rows = bench.run_compile_comparison([bench.ModelSpec("r3d_18", (1, 3, 4, 8, 8))], fast_settings(repeats=3))
    (row,) = rows
    assert (row["model"], row["input"]) == ("r3d_18", "4x8x8")
    assert 10.0 <= row["eager_ms"] < 60.0 and 10.0 <= row["compiled_ms"] < 60.0
    assert 0.5 < row["speedup"] < 2.0  # the same sleep either way
    assert row["max_abs_diff"] < 1e-4 and row["compile_s"] > 0
