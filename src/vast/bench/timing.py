"""How passes are timed: interleaved round robin (one pass of every runner per round), after warm-up
rounds, with fewer repeats for rows too slow for the time budget; the matmul whose rate is the machine's
practical peak; clips per second at a larger batch."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm import tqdm

from vast.bench.settings import BenchSettings
from vast.deploy import onednn_linear_available

Runner = Callable[[], Any]


def device_sync(device: torch.device) -> Callable[[], None]:
    """What waits for ``device`` to finish its queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def inference_runner(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> Runner:
    """``fn(x)`` under ``torch.inference_mode``, as a call without arguments."""

    def run() -> Any:
        with torch.inference_mode():
            return fn(x)

    return run


def interleaved_times(
    runners: dict[str, Runner],
    counts: dict[str, int],
    sync: Callable[[], None] = lambda: None,
    on_pass: Callable[[str], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds of ``counts[key]`` timed calls of each runner, interleaved round robin (A B C A B C ...)
    so that a slow phase of a shared machine affects every runner alike."""
    times: dict[str, list[float]] = {key: [] for key in runners}
    while any(len(times[k]) < counts[k] for k in runners):
        for key, fn in runners.items():
            if len(times[key]) >= counts[key]:
                continue
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times[key].append(time.perf_counter() - start)
            if on_pass is not None:
                on_pass(key)
    return times


def matmul_runners(device: torch.device, dtype: torch.dtype, size: int) -> tuple[dict[str, Runner], float]:
    """Square ``size`` matmuls and their multiply-adds (in G): ``torch.mm`` into a preallocated output
    (the BLAS: MKL on x86 CPUs, cuBLAS on GPUs) and, on a CPU with oneDNN, oneDNN's inner product with
    a pre-packed weight. The faster one is the machine's matmul rate that models are compared with."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    runners: dict[str, Runner] = {"matmul blas": lambda: torch.mm(a, b, out=out)}
    if device.type == "cpu" and onednn_linear_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous())
        runners["matmul onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    return runners, size**3 / 1e9


def repeat_counts(first: dict[str, float], settings: BenchSettings) -> dict[str, int]:
    """Repeats per row: ``settings.repeats``, fewer for rows so slow that they would exceed
    ``row_budget_s`` (at least 3, so a median exists)."""
    return {
        key: max(min(3, settings.repeats), min(settings.repeats, int(settings.row_budget_s / max(sec, 1e-9))))
        for key, sec in first.items()
    }


def _first_round(
    runners: dict[str, Runner], sync: Callable[[], None], advance: Callable[[str], None]
) -> tuple[dict[str, float], dict[str, str]]:
    """One untimed-for-the-median pass of every runner (it also compiles): the seconds of each, and the
    runners that cannot run here (e.g. an operator without a bf16 CPU kernel) with the reason, one line.
    The failed runners are removed from ``runners``."""
    first: dict[str, float] = {}
    failed: dict[str, str] = {}
    for key, fn in runners.items():
        try:
            first[key] = interleaved_times({key: fn}, {key: 1}, sync, advance)[key][0]
        except (NotImplementedError, RuntimeError) as error:
            failed[key] = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            advance(key)
    for key in failed:
        del runners[key]
    return first, failed


def _progress(bar: tqdm, label: Callable[[str], str] = str) -> Callable[[str], None]:
    """What advances ``bar`` by one pass of the runner ``key``, naming it."""

    def advance(key: str) -> None:
        bar.set_postfix_str(label(key), refresh=False)
        bar.update()

    return advance


def warm_and_time(
    runners: dict[str, Runner], settings: BenchSettings, sync: Callable[[], None], bar: tqdm
) -> tuple[dict[str, list[float]], dict[str, float], dict[str, str]]:
    """Warm-up rounds (the first also compiles), then the timed rounds; returns the times, the seconds of
    each runner's first call, and the runners that failed on their first call (removed from ``runners``)."""
    advance = _progress(bar)
    first_call, failed = _first_round(runners, sync, advance)
    last = first_call
    for _ in range(settings.warmup - 1):
        last = {k: v[0] for k, v in interleaved_times(runners, dict.fromkeys(runners, 1), sync, advance).items()}
    counts = repeat_counts(last, settings)
    bar.total = bar.n + sum(counts.values()) + (bar.total - bar.n - len(runners) * settings.repeats)
    return interleaved_times(runners, counts, sync, advance), first_call, failed


def throughput_batch(gmacs: float, settings: BenchSettings) -> int:
    """The batch a row of ``gmacs`` per clip is timed at: the throughput batch, or at most 2 above the
    GMACs budget."""
    if gmacs * settings.throughput_batch <= settings.throughput_gmacs_budget:
        return settings.throughput_batch
    return min(settings.throughput_batch, 2)


def clips_per_second(
    runners: dict[str, Runner], batches: dict[str, int], settings: BenchSettings, sync: Callable[[], None],
    bar: tqdm,
) -> dict[str, tuple[int, float]]:  # fmt: skip
    """``(batch, clips/s)`` of each runner (one pass = ``batches[key]`` clips), interleaved like the
    latency after warm-up rounds (two when compiled: batch shapes recompile)."""
    advance = _progress(bar, lambda key: f"batch {batches[key]} {key}")
    for _ in range(max(1, settings.warmup - 1, 2 if settings.compile else 1)):  # warm-up (and recompiles)
        first = interleaved_times(runners, dict.fromkeys(runners, 1), sync, advance)
    counts = {  # as many timed passes as the row budget allows, at least one
        key: max(1, min(settings.throughput_repeats, int(settings.row_budget_s / max(t[0], 1e-9))))
        for key, t in first.items()
    }
    times = interleaved_times(runners, counts, sync, advance)
    return {key: (batches[key], batches[key] / statistics.median(t)) for key, t in times.items()}
