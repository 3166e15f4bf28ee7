"""How latency and memory grow with the clip: sweeps over frames and resolution, each step's growth
against the growth of the input's voxels (1.00: linear in tokens)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm

from vast.bench.machine import parse_device, parse_dtype
from vast.bench.memory import MB, inference_peak
from vast.bench.runner import ModelPool
from vast.bench.settings import BenchSettings, applied
from vast.bench.specs import COMMON_INPUT, ModelSpec, make_input, meta_model, parse_model_arg
from vast.bench.timing import device_sync, warm_and_time
from vast.errors import ConfigError
from vast.models import count_flops

SCALING_FRAMES = (4, 8, 16, 32)
SCALING_SIZES = (112, 160, 224, 320)
SCALING_COLUMNS = (
    "model",
    "axis",
    "frames",
    "size",
    "tokens",
    "gmacs",
    "latency_ms",
    "time_ratio",
    "token_ratio",
    "growth",
    "infer_peak_mb",
    "memory_ratio",
)


def tokens_of(spec: ModelSpec) -> int:
    """Input voxels (T * H * W): proportional to every model's token count at a fixed patch size."""
    _, _, frames, height, width = spec.input_shape
    return frames * height * width


def scaling_specs(
    models: Sequence[str] = ("vast_tiny",),
    frames: Sequence[int] = SCALING_FRAMES,
    sizes: Sequence[int] = SCALING_SIZES,
    base: tuple[int, ...] = COMMON_INPUT,
) -> list[tuple[str, ModelSpec]]:
    """``(axis, spec)`` pairs: each model over ``frames`` at the base size, then over ``sizes`` at the base
    frame count."""
    out = []
    for text in models:
        name, options = parse_model_arg(text)
        for t in frames:
            out.append(("frames", ModelSpec(name, (*base[:2], t, base[3], base[4]), options, "scaling")))
        for s in sizes:
            out.append(("size", ModelSpec(name, (*base[:3], s, s), options, "scaling")))
    return out


def run_scaling(points: Sequence[tuple[str, ModelSpec]], settings: BenchSettings) -> list[dict[str, Any]]:
    """Latency and inference peak memory along each sweep, with the growth from one point to the next:
    ``growth = time_ratio / token_ratio`` is 1 for a cost exactly linear in the number of tokens."""
    device, dtype = parse_device(settings.device), parse_dtype(settings.dtype)
    rows: list[dict[str, Any]] = []
    with applied(settings):
        total = len(points) * (max(settings.warmup, 1) + settings.repeats + int(settings.memory))
        bar = tqdm(total=total, desc="scaling", unit="pass", disable=not settings.progress)
        pool = ModelPool(settings, device, dtype)
        keys = [f"{axis} {spec.key}" for axis, spec in points]
        times = _latencies(keys, points, pool, settings, bar)
        previous: dict[tuple[str, str], dict[str, Any]] = {}
        for key, (axis, spec) in zip(keys, points):
            row = _point(axis, spec, times[key])
            if settings.memory:
                bar.set_postfix_str(f"memory {key}", refresh=False)
                x = make_input(spec, device, dtype, channels_last=settings.channels_last)
                row["infer_peak_mb"] = inference_peak(pool.model(spec), x) / MB
                bar.update()
            _add_ratios(row, previous.get((spec.model_label, axis)))
            previous[(spec.model_label, axis)] = row
            rows.append(row)
        bar.close()
    return rows


def _latencies(
    keys: list[str], points: Sequence[tuple[str, ModelSpec]], pool: ModelPool, settings: BenchSettings, bar: tqdm
) -> dict[str, list[float]]:
    """The timed passes of every point, interleaved; a point that cannot run is an error."""
    runners = {key: pool.runner(spec) for key, (_, spec) in zip(keys, points)}
    times, _, failed = warm_and_time(runners, settings, device_sync(pool.device), bar)
    if failed:
        raise ConfigError(f"cannot run the sweep on {settings.device} {settings.dtype}: " + "; ".join(
            f"{key}: {reason}" for key, reason in failed.items()))  # fmt: skip
    return times


def _point(axis: str, spec: ModelSpec, times: list[float]) -> dict[str, Any]:
    """A row of the sweep without its ratios and memory: the point, its GMACs and median latency."""
    gmacs, _ = count_flops(meta_model(spec), spec.input_shape)
    row: dict[str, Any] = dict.fromkeys(SCALING_COLUMNS)
    row.update(
        model=spec.model_label,
        axis=axis,
        frames=spec.input_shape[2],
        size=spec.input_shape[3],
        tokens=tokens_of(spec),
        gmacs=gmacs,
        latency_ms=statistics.median(times) * 1e3,
    )
    return row


def _add_ratios(row: dict[str, Any], before: dict[str, Any] | None) -> None:
    """The time, token and memory ratios of ``row`` to the sweep's previous point (none for the first)."""
    if before is None:
        return
    row["time_ratio"] = row["latency_ms"] / before["latency_ms"]
    row["token_ratio"] = row["tokens"] / before["tokens"]
    row["growth"] = row["time_ratio"] / row["token_ratio"]
    if row["infer_peak_mb"] is not None:
        row["memory_ratio"] = row["infer_peak_mb"] / before["infer_peak_mb"]
