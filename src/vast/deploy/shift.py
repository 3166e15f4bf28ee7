"""The token shift for inference, writing every output element once.

:func:`vast.ops.shift.shift_tokens` pads each shifted group and concatenates the groups, so the shifted
channels are written twice; here each group is copied straight into a new tensor, one memory pass (faster
in eager inference; measured in ``benchmarks/bench_shift.py``). It has no backward pass and uses
in-place slice writes, so scripting, tracing, exporting and compiling take the reference form instead.
"""

from __future__ import annotations

import torch

from vast.ops.shift import TokenShift, _shift

# One entry per channel group: (first channel, end channel, token dim, step); step -1 reads the previous
# token along dim, +1 the next one, 0 leaves the channels in place.
_Plan = tuple[tuple[int, int, int, int], ...]


def shift_plan(channels: int, spatial: int, temporal: int, causal: bool) -> _Plan:
    g, k = spatial, temporal
    groups = [(0, g, 3, -1), (g, 2 * g, 3, 1), (2 * g, 3 * g, 2, -1), (3 * g, 4 * g, 2, 1)]
    groups += [(4 * g, 4 * g + k, 1, -1), (4 * g + k, 4 * g + 2 * k, 1, 0 if causal else 1)]
    groups.append((4 * g + 2 * k, channels, 1, 0))
    return tuple(group for group in groups if group[1] > group[0])


def shift_into(out: torch.Tensor, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """Write shift(x) into ``out`` (same shape), every element once, zeros at the borders."""
    for first, end, dim, step in plan:
        src, dst = x[..., first:end], out[..., first:end]
        length = x.shape[dim]
        if step == 0:
            dst.copy_(src)
            continue
        write, read, border = (1, 0, 0) if step < 0 else (0, 1, length - 1)
        if length > 1:
            dst.narrow(dim, write, length - 1).copy_(src.narrow(dim, read, length - 1))
        dst.narrow(dim, border, 1).zero_()
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
        self.plan = shift_plan(shift.dim, shift.spatial, shift.temporal, shift.causal)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # noqa: SIM102 (TorchScript skips only this exact test)
            if not (_portable(x) or x.requires_grad or self.spatial + self.temporal == 0):
                return shift_into(torch.empty_like(x, memory_format=torch.contiguous_format), x, self.plan)
        return _shift(x, self.spatial, self.temporal, self.causal)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, spatial={self.spatial}x4, temporal={self.temporal}x2, causal={self.causal}"
