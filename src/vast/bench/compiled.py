"""``torch.compile`` (inductor, frozen weights) for inference, and its latency against eager's."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from vast.bench.machine import parse_device, parse_dtype
from vast.bench.settings import BenchSettings, applied
from vast.bench.specs import ModelSpec, build_model, make_input
from vast.bench.timing import device_sync, inference_runner, warm_and_time
from vast.errors import ConfigError

COMPILE_COLUMNS = ("model", "input", "eager_ms", "compiled_ms", "speedup", "max_abs_diff", "compile_s")


def compile_model(model: nn.Module, example: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.compile`` for inference, with inductor's weight ``freezing`` (weights become constants
    that it can fold and pre-pack), set around every call since compilation happens on the first one.

    ``example``, if given, is run once in eager mode first (one-time work of the eager model, such as
    packing a fused VAST model's oneDNN weights, is then not mistaken for compiled time).
    """
    from torch._inductor import config

    if example is not None:
        inference_runner(model, example)()
    compiled = torch.compile(model)

    def run(x: torch.Tensor) -> torch.Tensor:
        with config.patch(freezing=True):
            return compiled(x)

    return run


def run_compile_comparison(specs: Sequence[ModelSpec], settings: BenchSettings) -> list[dict[str, Any]]:
    """Eager and ``torch.compile`` (see :func:`compile_model`) latency of each spec, interleaved in one
    loop, with the largest absolute difference between their outputs."""
    device, dtype = parse_device(settings.device), parse_dtype(settings.dtype)
    with applied(settings):
        sync = device_sync(device)
        bar = tqdm(total=len(specs) * 2 * (settings.warmup + settings.repeats), desc="compile", unit="pass",
                   disable=not settings.progress)  # fmt: skip
        runners, diffs, compile_s = {}, {}, {}
        for spec in specs:
            bar.set_postfix_str(f"compile {spec.key}", refresh=True)
            model = build_model(spec, device, dtype, settings.channels_last)
            x = make_input(spec, device, dtype, channels_last=settings.channels_last)
            compiled = compile_model(model, x)
            compile_s[spec.key], diffs[spec.key] = _first_compiled_call(model, compiled, x, sync)
            runners[f"eager {spec.key}"] = inference_runner(model, x)
            runners[f"compiled {spec.key}"] = inference_runner(compiled, x)
        times, _, failed = warm_and_time(runners, settings, sync, bar)
        bar.close()
    if failed:
        raise ConfigError("cannot run: " + "; ".join(f"{key}: {reason}" for key, reason in failed.items()))
    return [_comparison_row(spec, times, diffs[spec.key], compile_s[spec.key]) for spec in specs]


def _first_compiled_call(
    model: nn.Module, compiled: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, sync: Callable[[], None]
) -> tuple[float, float]:
    """Seconds of the compiled model's first call (its compilation), and the largest absolute difference
    between its output and the eager model's."""
    start = time.perf_counter()
    with torch.inference_mode():
        out = compiled(x)
        sync()
        seconds = time.perf_counter() - start
        return seconds, float((out.float() - model(x).float()).abs().max())


def _comparison_row(spec: ModelSpec, times: dict[str, list[float]], diff: float, compile_s: float) -> dict[str, Any]:
    eager, compiled = (statistics.median(times[f"{kind} {spec.key}"]) for kind in ("eager", "compiled"))
    return dict(
        model=spec.model_label,
        input=spec.input_label,
        eager_ms=eager * 1e3,
        compiled_ms=compiled * 1e3,
        speedup=eager / compiled,
        max_abs_diff=diff,
        compile_s=compile_s,
    )
