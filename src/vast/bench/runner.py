"""One benchmark run: every row timed in the same rounds as the machine's matmul, then its throughput and
memory (:func:`run_benchmark`), and the figures it returns (:class:`BenchResult`, :class:`BenchReport`)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from tqdm import tqdm

from vast.bench.compiled import compile_model
from vast.bench.machine import machine_info, parse_device, parse_dtype
from vast.bench.memory import MB, inference_peak, release, training_peak
from vast.bench.settings import BenchSettings, applied
from vast.bench.shift import shift_calls, shift_replay
from vast.bench.specs import ModelSpec, build_model, make_input, meta_model
from vast.bench.timing import (
    Runner,
    clips_per_second,
    device_sync,
    inference_runner,
    matmul_runners,
    throughput_batch,
    warm_and_time,
)
from vast.errors import ConfigError
from vast.models import count_flops

RESULT_COLUMNS = (
    "model",
    "input",
    "params_m",
    "gmacs",
    "latency_ms",
    "latency_min_ms",
    "latency_max_ms",
    "repeats",
    "gmacs_per_s",
    "pct_matmul_peak",
    "throughput_batch",
    "throughput_clips_s",
    "infer_peak_mb",
    "train_peak_mb",
    "train_mb_per_gmac",
    "compile_s",
    "shift_pct",
)


@dataclass
class BenchResult:
    """The measured figures of one :class:`ModelSpec` (memory in MiB, ``None`` where not measured)."""

    model: str
    input: str
    params_m: float
    gmacs: float
    latency_ms: float
    latency_min_ms: float
    latency_max_ms: float
    repeats: int
    gmacs_per_s: float
    pct_matmul_peak: float
    throughput_batch: int | None = None
    throughput_clips_s: float | None = None
    infer_peak_mb: float | None = None
    train_peak_mb: float | None = None
    train_mb_per_gmac: float | None = None
    compile_s: float | None = None
    shift_pct: float | None = None

    def row(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in RESULT_COLUMNS}


@dataclass
class BenchReport:
    """Results of one run with the machine, settings and the matmul rate they are relative to."""

    results: list[BenchResult]
    matmul_gmacs_per_s: float
    settings: dict[str, Any]
    machine: dict[str, Any]
    scaling: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # rows that cannot run here, with the reason

    def to_json(self) -> dict[str, Any]:
        return dict(
            machine=self.machine,
            settings=self.settings,
            matmul_gmacs_per_s=self.matmul_gmacs_per_s,
            results=[r.row() for r in self.results],
            scaling=self.scaling,
            skipped=self.skipped,
        )


class ModelPool:
    """The models of a run (one per model and options, shared by its inputs), compiled once if asked."""

    def __init__(self, settings: BenchSettings, device: torch.device, dtype: torch.dtype) -> None:
        self.settings, self.device, self.dtype = settings, device, dtype
        self.models: dict[str, nn.Module] = {}
        self.callables: dict[str, Callable[[torch.Tensor], Any]] = {}

    def model(self, spec: ModelSpec) -> nn.Module:
        if spec.model_label not in self.models:
            model = build_model(spec, self.device, self.dtype, self.settings.channels_last)
            self.models[spec.model_label] = model
            example = make_input(spec, self.device, self.dtype, channels_last=self.settings.channels_last)
            self.callables[spec.model_label] = compile_model(model, example) if self.settings.compile else model
        return self.models[spec.model_label]

    def runner(self, spec: ModelSpec, batch: int = 1) -> Runner:
        self.model(spec)
        x = make_input(spec, self.device, self.dtype, batch, self.settings.channels_last)
        return inference_runner(self.callables[spec.model_label], x)


class _Timed(NamedTuple):
    specs: list[ModelSpec]  # the rows that ran
    results: list[BenchResult]
    matmul_gmacs: float
    matmul_rates: dict[str, float]
    skipped: dict[str, str]


def run_benchmark(specs: Sequence[ModelSpec], settings: BenchSettings) -> BenchReport:
    """Measure every spec and return the report.

    * **GMACs**: :func:`vast.count_flops` (``torch.utils.flop_counter``, multiply-adds), counted once per
      input on the ``meta`` device.
    * **latency**: batch 1, the median of timed forward passes after untimed warm-up passes, interleaved
      with every other row and the matmul (:mod:`vast.bench.timing`), so that a slow phase of a shared
      machine slows every row alike and ratios between rows stay meaningful.
    * **achieved GMAC/s** = GMACs / latency, and its share of the machine's matmul rate, a square
      ``torch.mm`` of the same dtype timed in the same rounds.
    * **throughput**: clips per second at a larger batch, timed the same way.
    * **peak memory** of inference and of one training step (:mod:`vast.bench.memory`).
    """
    device, dtype = parse_device(settings.device), parse_dtype(settings.dtype)
    if not specs:
        raise ConfigError("nothing to benchmark: give at least one model")
    with applied(settings):
        flops = {spec.key: count_flops(meta_model(spec.unfused), spec.input_shape) for spec in specs}
        bar = tqdm(total=_total_passes(specs, settings), desc="bench", unit="pass", disable=not settings.progress)
        timed = _time_rows(specs, settings, flops, device, dtype, bar)
        release(device)
        if settings.memory:
            _measure_memory(timed.specs, timed.results, settings, device, dtype, bar)
        bar.close()
    return BenchReport(
        results=timed.results,
        matmul_gmacs_per_s=max(timed.matmul_rates.values()),
        settings=dict(dataclasses.asdict(settings), matmul_gmacs=timed.matmul_gmacs, matmul_rates=timed.matmul_rates),
        machine=machine_info(device),
        skipped=timed.skipped,
    )


def _time_rows(
    specs: Sequence[ModelSpec],
    settings: BenchSettings,
    flops: dict[str, tuple[float, int]],
    device: torch.device,
    dtype: torch.dtype,
    bar: tqdm,
) -> _Timed:
    """Latency of every row, the matmul rates and the shift replays in the same rounds, then throughput."""
    sync = device_sync(device)
    pool = ModelPool(settings, device, dtype)
    runners = {spec.key: pool.runner(spec) for spec in specs}
    matmuls, matmul_gmacs = matmul_runners(device, dtype, settings.matmul_size)
    runners.update(matmuls)
    shifts = {} if settings.compile else _shift_runners(specs, pool, device, dtype, settings)
    runners.update(shifts)
    times, first_call, failed = warm_and_time(runners, settings, sync, bar)
    specs, skipped = _runnable(specs, failed, settings)
    matmul_rates = {key: matmul_gmacs / statistics.median(times.pop(key)) for key in matmuls}
    shift_s = {key: statistics.median(times.pop(key)) for key in shifts if key in times}
    throughput = _throughput(specs, settings, pool, flops, sync, bar)
    results = []
    for spec in specs:
        result = _result(spec, flops[spec.key], times[spec.key], max(matmul_rates.values()), throughput.get(spec.key))
        if settings.compile:
            result.compile_s = first_call[spec.key]
        if f"shift {spec.key}" in shift_s:
            result.shift_pct = 100.0 * shift_s[f"shift {spec.key}"] / (result.latency_ms / 1e3)
        results.append(result)
    return _Timed(specs, results, matmul_gmacs, matmul_rates, skipped)


def _runnable(
    specs: Sequence[ModelSpec], failed: dict[str, str], settings: BenchSettings
) -> tuple[list[ModelSpec], dict[str, str]]:
    """The rows that ran, and those that cannot run here with the reason; none running is an error."""
    skipped = {spec.key: failed[spec.key] for spec in specs if spec.key in failed}
    for key in set(failed) - set(skipped):  # a shift replay of a row that runs cannot fail alone
        raise RuntimeError(f"{key}: {failed[key]}")
    runnable = [spec for spec in specs if spec.key not in skipped]
    if not runnable:
        raise ConfigError(f"no model can run on {settings.device} {settings.dtype}: " + "; ".join(
            f"{key}: {reason}" for key, reason in skipped.items()))  # fmt: skip
    return runnable, skipped


def _shift_runners(
    specs: Sequence[ModelSpec], pool: ModelPool, device: torch.device, dtype: torch.dtype, settings: BenchSettings
) -> dict[str, Runner]:
    """For each VAST row, every token shift of one forward pass replayed on its own (same shapes and
    strides, fresh data): its time over the forward's is the shift's share of the forward pass. A row
    whose model calls no :class:`~vast.ops.shift.TokenShift` gets no share rather than one of nothing."""
    runners = {}
    for spec in specs:
        if not spec.is_vast:
            continue
        x = make_input(spec, device, dtype, channels_last=settings.channels_last)
        calls = shift_calls(pool.model(spec), x)
        if calls:
            runners[f"shift {spec.key}"] = shift_replay(calls)
    return runners


def _result(
    spec: ModelSpec,
    flops: tuple[float, int],
    times: list[float],
    matmul_rate: float,
    throughput: tuple[int, float] | None,
) -> BenchResult:
    gmacs, params = flops
    latency = statistics.median(times)
    rate = gmacs / latency
    batch, clips = throughput if throughput is not None else (None, None)
    return BenchResult(
        model=spec.model_label,
        input=spec.input_label,
        params_m=params / 1e6,
        gmacs=gmacs,
        latency_ms=latency * 1e3,
        latency_min_ms=min(times) * 1e3,
        latency_max_ms=max(times) * 1e3,
        repeats=len(times),
        gmacs_per_s=rate,
        pct_matmul_peak=100.0 * rate / matmul_rate,
        throughput_batch=batch,
        throughput_clips_s=clips,
    )


def _throughput(
    specs: Sequence[ModelSpec],
    settings: BenchSettings,
    pool: ModelPool,
    flops: dict[str, tuple[float, int]],
    sync: Callable[[], None],
    bar: tqdm,
) -> dict[str, tuple[int, float]]:
    """Clips per second at the throughput batch, interleaved like the latency (eager or compiled as set)."""
    if settings.throughput_batch <= 1 or settings.throughput_repeats < 1:
        return {}
    batches = {spec.key: throughput_batch(flops[spec.key][0], settings) for spec in specs}
    runners = {spec.key: pool.runner(spec, batches[spec.key]) for spec in specs}
    return clips_per_second(runners, batches, settings, sync, bar)


def _measure_memory(
    specs: Sequence[ModelSpec],
    results: list[BenchResult],
    settings: BenchSettings,
    device: torch.device,
    dtype: torch.dtype,
    bar: tqdm,
) -> None:
    """Inference and training peaks, one model at a time, eager (what a user's training loop runs).
    Training is measured at the inputs of the comparison (``note != "weights"``): a step of the heavy
    weights-input clips (s3d's 128 frames) would take most of the run's time and many GB."""
    for spec, result in zip(specs, results):
        bar.set_postfix_str(f"memory {spec.key}", refresh=False)
        model = build_model(spec, device, dtype, settings.channels_last)
        x = make_input(spec, device, dtype, channels_last=settings.channels_last)
        inference_runner(model, x)()  # the first pass may allocate one-time workspaces
        result.infer_peak_mb = inference_peak(model, x) / MB
        del model, x
        release(device)
        bar.update()
        if settings.train_memory and not spec.fused and spec.note != "weights":
            result.train_peak_mb = training_peak(spec, device, dtype, settings.channels_last) / MB
            result.train_mb_per_gmac = result.train_peak_mb / result.gmacs
            bar.update()


def _total_passes(specs: Sequence[ModelSpec], settings: BenchSettings) -> int:
    passes = (len(specs) + 1) * (max(settings.warmup, 1) + settings.repeats)
    if settings.throughput_batch > 1:
        passes += len(specs) * (1 + settings.throughput_repeats)
    if settings.memory:
        passes += len(specs) * (2 if settings.train_memory else 1)
    return passes
