"""The token shift's share of a VAST forward pass: every shift of one pass replayed on its own."""

from __future__ import annotations

import torch
from torch import nn

from vast.bench.timing import Runner, inference_runner
from vast.ops.shift import InferenceTokenShift, TokenShift


def shift_calls(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """The token-shift modules (the reference's or the fused model's) called in one forward pass of
    ``model`` on ``x``, in call order, each
    with a fresh tensor shaped and strided like its input."""
    calls: list[tuple[nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        t = args[0]
        calls.append((module, torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=t.device).normal_()))

    shifts = [m for m in model.modules() if isinstance(m, (TokenShift, InferenceTokenShift))]
    hooks = [m.register_forward_pre_hook(record) for m in shifts]
    try:
        inference_runner(model, x)()
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def shift_replay(calls: list[tuple[nn.Module, torch.Tensor]]) -> Runner:
    """Every recorded shift call again, under ``torch.inference_mode``: its time over the forward pass's
    is the shift's share of it."""

    def run() -> None:
        with torch.inference_mode():
            for module, x in calls:
                module(x)

    return run
