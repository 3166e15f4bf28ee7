"""The zero-FLOP, zero-parameter token shift of the Affine-Shift block.

Tokens are channels-last, ``x: (B, T, H, W, C)``. The channels are cut into consecutive groups,
each of which takes its value from one neighbouring token (zero outside the clip):

=====================  ===========================  ==========================================
channels               group                        token (t, h, w) receives the value of
=====================  ===========================  ==========================================
``[0, g)``             ``W-1``                      ``(t, h, w - 1)``
``[g, 2g)``            ``W+1``                      ``(t, h, w + 1)``
``[2g, 3g)``           ``H-1``                      ``(t, h - 1, w)``
``[3g, 4g)``           ``H+1``                      ``(t, h + 1, w)``
``[4g, 4g + k)``       ``T-d``                      ``(t - d, h, w)``  (a past frame)
``[4g + k, 4g + 2k)``  ``T+d``                      ``(t + d, h, w)``  (a future frame)
rest                   unshifted                    ``(t, h, w)``
=====================  ===========================  ==========================================

with ``g = floor(C * spatial_fraction / 4)``, ``k = floor(C * temporal_fraction / 2)`` (defaults 1/3
and 1/4: four spatial groups of C/12 and two temporal groups of C/8) and ``d`` the temporal offset
(default 1, the paper's neighbouring frame; a model can give each block its own, ``temporal_offsets``).

``causal=True`` is for streaming: nothing may come from a future frame, so the ``T+d`` group is left
unshifted (as in TSM's online variant) and only ``T-d`` moves information forward in time.

The layout is written once, as a plan (:func:`shift_plan`): one ``(first, end, dim, step)`` entry per
channel group, where token ``i`` along ``dim`` receives token ``i + step``. The reference shift here,
the inference shift (:mod:`vast.deploy.shift`) and the streaming shift
(:class:`vast.streaming.CarriedShift`) all read it.

The shift is written with slices, ``F.pad`` and one ``torch.cat``: no in-place slice assignment, so it
runs the same in eager mode, under autograd, and in every tracer and exporter (TorchScript, FX,
``torch.export``, ONNX), and ``torch.compile`` fuses it into its consumer.

:func:`shift_tokens_reference` is the slow, obviously correct version the tests compare every form with.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vast.errors import InputShapeError

# (first channel, end channel, token dim (1 = T, 2 = H, 3 = W), step): token i receives token i + step.
ShiftPlan = list[tuple[int, int, int, int]]


class ShiftGroups(NamedTuple):
    """Channel counts of the shift: ``spatial`` per spatial group (4 of them), ``temporal`` per
    temporal group (2 of them)."""

    spatial: int
    temporal: int

    @property
    def shifted(self) -> int:
        return 4 * self.spatial + 2 * self.temporal


def shift_group_sizes(
    channels: int, spatial_fraction: float = 1 / 3, temporal_fraction: float = 1 / 4
) -> ShiftGroups:
    """Channels per group for a tensor with ``channels`` channels.

    ``spatial_fraction`` of the channels are split over the four spatial groups and
    ``temporal_fraction`` over the two temporal groups (both rounded down to whole channels).
    """
    if not 0.0 <= spatial_fraction <= 1.0 or not 0.0 <= temporal_fraction <= 1.0:
        raise ValueError(
            f"shift fractions must lie in [0, 1], "
            f"got spatial={spatial_fraction}, temporal={temporal_fraction}"
        )
    if spatial_fraction + temporal_fraction > 1.0 + 1e-9:
        raise ValueError(
            f"spatial_fraction + temporal_fraction must be <= 1 (the shifted channels cannot exceed C), "
            f"got {spatial_fraction} + {temporal_fraction}"
        )
    # A small epsilon so that e.g. 96 * (1/3) / 4 = 7.999... still gives 8 channels.
    spatial = int(channels * spatial_fraction / 4 + 1e-6)
    temporal = int(channels * temporal_fraction / 2 + 1e-6)
    return ShiftGroups(spatial, temporal)


def shift_plan(channels: int, groups: ShiftGroups, causal: bool = False, temporal_offset: int = 1) -> ShiftPlan:
    """The channel groups of the shift in channel order (module docstring), empty groups left out and
    neighbouring unshifted groups merged."""
    if temporal_offset < 1:
        raise ValueError(f"the temporal offset is a number of frames >= 1, got {temporal_offset}")
    g, k, d = groups.spatial, groups.temporal, temporal_offset
    wanted = [(0, g, 3, -1), (g, 2 * g, 3, 1), (2 * g, 3 * g, 2, -1), (3 * g, 4 * g, 2, 1)]
    wanted += [(4 * g, 4 * g + k, 1, -d), (4 * g + k, 4 * g + 2 * k, 1, 0 if causal else d)]
    wanted.append((groups.shifted, channels, 1, 0))
    plan: ShiftPlan = []
    for first, end, dim, step in wanted:
        if end <= first:
            continue
        if step == 0 and plan and plan[-1][3] == 0:
            plan[-1] = (plan[-1][0], end, 1, 0)
        else:
            plan.append((first, end, dim, step))
    return plan


def shift_along(x: torch.Tensor, dim: int, step: int) -> torch.Tensor:
    """``x`` with token ``i`` along ``dim`` (1, 2 or 3) replaced by token ``i + step``, zero-filled."""
    # F.pad lists pairs from the last dimension backwards: (C, W, H, T).
    pad = [0, 0, 0, 0, 0, 0, 0, 0]
    pair = 2 * (4 - dim)
    if step < 0:
        pad[pair] = -step  # zeros in front; token i now holds old token i + step
        return F.pad(x, pad[: pair + 2]).narrow(dim, 0, x.shape[dim])
    pad[pair + 1] = step  # zeros at the end; token i now holds old token i + step
    return F.pad(x, pad[: pair + 2]).narrow(dim, step, x.shape[dim])


def shift_parts(x: torch.Tensor, plan: ShiftPlan) -> list[torch.Tensor]:
    """The shifted channel groups of ``x`` in channel order, before their concatenation."""
    parts: list[torch.Tensor] = []
    for first, end, dim, step in plan:
        part = x[..., first:end]
        parts.append(part if step == 0 else shift_along(part, dim, step))
    return parts


def apply_shift(x: torch.Tensor, plan: ShiftPlan) -> torch.Tensor:
    """The shift of ``plan``: slices, pad and one concatenation (``x`` itself when nothing moves)."""
    if len(plan) == 1 and plan[0][3] == 0:
        return x
    return torch.cat(shift_parts(x, plan), dim=-1)


def shift_tokens(
    x: torch.Tensor,
    spatial_fraction: float = 1 / 3,
    temporal_fraction: float = 1 / 4,
    temporal: bool = True,
    causal: bool = False,
    temporal_offset: int = 1,
) -> torch.Tensor:
    """Shift channel groups of channels-last tokens ``(B, T, H, W, C)`` to neighbouring tokens.

    See the module docstring for the channel layout. ``temporal=False`` leaves the temporal groups'
    channels unshifted (no information crosses frames); ``temporal_offset`` is how many frames the
    temporal groups move. Returns a new tensor of the same shape.
    """
    if x.dim() != 5:
        raise InputShapeError(
            f"shift_tokens expects channels-last tokens (B, T, H, W, C), got a {x.dim()}-D tensor of "
            f"shape {tuple(x.shape)}; for images use T = 1, e.g. x[:, None]"
        )
    groups = shift_group_sizes(x.shape[-1], spatial_fraction, temporal_fraction if temporal else 0.0)
    return apply_shift(x, shift_plan(x.shape[-1], groups, causal, temporal_offset))


def shift_tokens_reference(
    x: torch.Tensor,
    spatial_fraction: float = 1 / 3,
    temporal_fraction: float = 1 / 4,
    temporal: bool = True,
    causal: bool = False,
    temporal_offset: int = 1,
) -> torch.Tensor:
    """Slow, obviously correct shift with explicit loops over tokens and channels (for tests)."""
    batch, frames, height, width, channels = x.shape
    groups = shift_group_sizes(channels, spatial_fraction, temporal_fraction if temporal else 0.0)
    g, k, d = groups.spatial, groups.temporal, temporal_offset
    # (dt, dh, dw): where each channel reads from, relative to the receiving token.
    offsets = [(0, 0, -1)] * g + [(0, 0, 1)] * g + [(0, -1, 0)] * g + [(0, 1, 0)] * g
    offsets += [(-d, 0, 0)] * k + [(0, 0, 0) if causal else (d, 0, 0)] * k
    offsets += [(0, 0, 0)] * (channels - len(offsets))
    rows = []
    for t in range(frames):
        for h in range(height):
            for w in range(width):
                values = []
                for c, (dt, dh, dw) in enumerate(offsets):
                    ts, hs, ws = t + dt, h + dh, w + dw
                    inside = 0 <= ts < frames and 0 <= hs < height and 0 <= ws < width
                    values.append(x[:, ts, hs, ws, c] if inside else torch.zeros_like(x[:, 0, 0, 0, c]))
                rows.append(torch.stack(values, dim=-1))
    return torch.stack(rows, dim=1).reshape(batch, frames, height, width, channels)


class TokenShift(nn.Module):
    """The shift as a module with its channel groups fixed at construction (no parameters)."""

    def __init__(
        self,
        dim: int,
        spatial_fraction: float = 1 / 3,
        temporal_fraction: float = 1 / 4,
        temporal: bool = True,
        causal: bool = False,
        temporal_offset: int = 1,
    ) -> None:
        super().__init__()
        groups = shift_group_sizes(dim, spatial_fraction, temporal_fraction if temporal else 0.0)
        self.dim = dim
        self.spatial = groups.spatial
        self.temporal = groups.temporal
        self.causal = causal
        self.offset = temporal_offset
        self.plan = shift_plan(dim, groups, causal, temporal_offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_shift(x, self.plan)

    def extra_repr(self) -> str:
        offset = f", offset={self.offset}" if self.temporal else ""
        return f"dim={self.dim}, spatial={self.spatial}x4, temporal={self.temporal}x2{offset}, causal={self.causal}"
