"""Peak tensor memory of an inference pass and of a training step, weights and inputs included."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vast.bench.specs import ModelSpec, build_model, make_input
from vast.bench.timing import inference_runner
from vast.deploy import packed_bytes
from vast.engine.runtime import apply_training_options

MB = 2**20


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views of one storage count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def peak_memory(fn: Callable[[], Any], device: torch.device, resident: int) -> int:
    """Peak bytes held by tensors while ``fn()`` runs: ``resident`` (what was allocated before, e.g. the
    weights, the optimiser state and the input) plus the highest the allocator's live total rises.

    CUDA: ``torch.cuda.max_memory_allocated`` after a reset of the peak (``resident`` is then read from
    the allocator instead). CPU: PyTorch keeps no allocator statistics there, so the profiler records
    every allocation and free of the CPU allocator (``profile_memory=True``, sizes in bytes) and the
    peak of their running sum is taken. This is the tensor memory, the same quantity on both devices;
    not the process RSS, which also holds the interpreter, the libraries and whatever glibc keeps cached,
    and whose peak (``ru_maxrss``) never goes down, so it cannot tell models in one process apart.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return resident + _cpu_peak_allocated(fn)


def _cpu_peak_allocated(fn: Callable[[], Any]) -> int:
    """The highest running sum of the CPU allocator's allocation and free events while ``fn()`` runs."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    ]
    running = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        running += event.nbytes()
        peak = max(peak, running)
    return peak


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Hide what the profiler's C++ side writes straight to file descriptor 2 (start/stop notes, and a
    CUDA-device error on CUDA builds without a GPU); Python's own errors still propagate as exceptions."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def inference_peak(model: nn.Module, x: torch.Tensor, fn: Callable[[torch.Tensor], Any] | None = None) -> int:
    """Peak tensor bytes of one inference pass of ``fn`` (default ``model``), weights and input included,
    and the oneDNN-packed copies of the weights that earlier passes made."""
    resident = tensor_bytes([*model.parameters(), *model.buffers(), x]) + packed_bytes(model)
    return peak_memory(inference_runner(fn or model, x), x.device, resident)


def training_peak(spec: ModelSpec, device: torch.device, dtype: torch.dtype, channels_last: bool = False) -> int:
    """Peak tensor bytes of one training step (forward, backward, AdamW step) on one clip, eager.

    Weights stay fp32; ``bf16`` trains under autocast, as mixed precision is used in practice. The first
    step (which creates the optimiser state) is not measured; the second is, with the gradients freed
    in between (``zero_grad(set_to_none=True)``), so the gradients count as part of the step. VAST
    trains with ``set_memory_lean(True)``, as every shipped recipe does (``train.memory_lean``).
    """
    model = build_model(spec, device, torch.float32, channels_last).train()
    apply_training_options(model, spec.name, memory_lean=True)  # a peer without it trains plainly
    x = make_input(spec, device, torch.float32, channels_last=channels_last)
    target = torch.zeros(x.shape[0], dtype=torch.long, device=device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(model(x).float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()
    state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    resident = tensor_bytes([*model.parameters(), *model.buffers(), *state, x])
    return peak_memory(step, device, resident)


def release(device: torch.device) -> None:
    """Free what the last model left: Python's garbage and, on CUDA, the allocator's cached blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
