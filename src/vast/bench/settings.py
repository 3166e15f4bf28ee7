"""How to measure (:class:`BenchSettings`), and the process-wide settings a run asks for, applied for the
run only: the library leaves the process as it found it unless the settings ask otherwise."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from vast.errors import ConfigError


@dataclass
class BenchSettings:
    """How to measure. ``threads=None`` keeps torch's current setting."""

    device: str = "cpu"
    dtype: str = "fp32"
    threads: int | None = None
    compile: bool = False  # torch.compile (inductor, frozen weights) for the timed passes
    onednn: bool = True  # fused rows on oneDNN (vast.deploy); False: on F.linear (the rows say onednn=False)
    channels_last: bool = False
    warmup: int = 2
    repeats: int = 5
    row_budget_s: float = 8.0  # seconds per row and phase: heavy rows get fewer repeats (at least 3)
    throughput_batch: int = 4
    throughput_gmacs_budget: float = 160.0  # a row of more GMACs per clip is timed at a batch of 2
    throughput_repeats: int = 3
    memory: bool = True
    train_memory: bool = True
    matmul_size: int = 4096
    progress: bool = True


@contextlib.contextmanager
def applied(settings: BenchSettings) -> Iterator[None]:
    """Within the block, what ``settings`` ask of the process and nothing else: torch's intra-op thread
    count only when ``settings.threads`` is given, restored afterwards."""
    if settings.threads is not None and settings.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {settings.threads}")
    with contextlib.ExitStack() as stack:
        if settings.threads is not None:
            stack.enter_context(intra_op_threads(settings.threads))
        yield


@contextlib.contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` within the block, the previous count restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
