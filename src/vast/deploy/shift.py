"""The token shift for inference, writing every output element once.

:func:`vast.ops.shift.apply_shift` pads each shifted group and concatenates the groups, so the shifted
channels are written twice; here each group of the same plan (:func:`vast.ops.shift.shift_plan`) is
copied straight into a new tensor, one memory pass (faster in eager inference; ``vast bench`` reports
the shift's share of a forward pass). It has no backward pass and uses in-place slice writes, so
scripting, tracing, exporting and compiling take the reference form instead.
"""

from __future__ import annotations

import torch

from vast.ops.shift import ShiftPlan, TokenShift, apply_shift


def shift_into(out: torch.Tensor, x: torch.Tensor, plan: ShiftPlan) -> torch.Tensor:
    """Write the shift of ``plan`` of ``x`` into ``out`` (same shape), every element once, zeros at the
    borders."""
    for first, end, dim, step in plan:
        src, dst = x[..., first:end], out[..., first:end]
        if step == 0:
            dst.copy_(src)
            continue
        length = x.shape[dim]
        moved = min(abs(step), length)  # tokens that read from outside the clip or map
        kept = length - moved
        write, read, border = (moved, 0, 0) if step < 0 else (0, moved, kept)
        if kept > 0:
            dst.narrow(dim, write, kept).copy_(src.narrow(dim, read, kept))
        dst.narrow(dim, border, moved).zero_()
    return out


def _portable(x: torch.Tensor) -> bool:
    """Whether ``x`` flows through a tracer, exporter or compiler, which need the reference form."""
    if torch.jit.is_tracing() or isinstance(x, torch.fx.Proxy) or torch.compiler.is_compiling():
        return True
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting is not None and is_exporting())


class InferenceTokenShift(torch.nn.Module):
    """A :class:`~vast.ops.shift.TokenShift` that writes its output in one pass (inference only)."""

    def __init__(self, shift: TokenShift) -> None:
        super().__init__()
        self.dim, self.spatial, self.temporal, self.causal = shift.dim, shift.spatial, shift.temporal, shift.causal
        self.offset = shift.offset
        self.plan = list(shift.plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # noqa: SIM102 (TorchScript skips only this exact test)
            if not (_portable(x) or x.requires_grad or self.spatial + self.temporal == 0):
                return shift_into(torch.empty_like(x, memory_format=torch.contiguous_format), x, self.plan)
        return apply_shift(x, self.plan)

    def extra_repr(self) -> str:
        offset = f", offset={self.offset}" if self.temporal else ""
        return f"dim={self.dim}, spatial={self.spatial}x4, temporal={self.temporal}x2{offset}, causal={self.causal}"
