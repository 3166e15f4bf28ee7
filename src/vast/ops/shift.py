"""The zero-FLOP, zero-parameter token shift of the Affine-Shift block.

Tokens are channels-last, ``x: (B, T, H, W, C)``. The channels are cut into consecutive groups,
each of which takes its value from one neighbouring token (zero outside the clip):

====================  ===========================  ==========================================
channels              group                        token (t, h, w) receives the value of
====================  ===========================  ==========================================
``[0, g)``            ``W-1``                      ``(t, h, w - 1)``
``[g, 2g)``           ``W+1``                      ``(t, h, w + 1)``
``[2g, 3g)``          ``H-1``                      ``(t, h - 1, w)``
``[3g, 4g)``          ``H+1``                      ``(t, h + 1, w)``
``[4g, 4g + k)``      ``T-1``                      ``(t - 1, h, w)``  (past frame)
``[4g + k, 4g + 2k)``  ``T+1``                     ``(t + 1, h, w)``  (future frame)
rest                  unshifted                    ``(t, h, w)``
====================  ===========================  ==========================================

with ``g = floor(C * spatial_fraction / 4)`` and ``k = floor(C * temporal_fraction / 2)``
(defaults 1/3 and 1/4: four spatial groups of C/12 and two temporal groups of C/8).

``causal=True`` is for streaming: nothing may come from a future frame, so the ``T+1`` group is left
unshifted (as in TSM's online variant) and only ``T-1`` moves information forward in time.

The shift is written with slices, ``F.pad`` and one ``torch.cat``: no in-place slice assignment, so it
runs the same in eager mode, under autograd, and in every tracer and exporter (TorchScript, FX,
``torch.export``, ONNX), and ``torch.compile`` fuses it into its consumer. An inference-only form
that writes each element once is in :mod:`vast.deploy.shift`.

:func:`shift_tokens_reference` is the slow, obviously correct version the tests compare both against.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vast.errors import InputShapeError


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


def _shift_along(x: torch.Tensor, dim: int, take_from_previous: bool) -> torch.Tensor:
    """Shift a (B, T, H, W, c) slice by one token along ``dim`` (1, 2 or 3), zero-filled."""
    # F.pad lists pairs from the last dimension backwards: (C, W, H, T).
    pad = [0, 0, 0, 0, 0, 0, 0, 0]
    pair = 2 * (4 - dim)
    if take_from_previous:
        pad[pair] = 1  # a zero in front; token i now holds old token i - 1
        return F.pad(x, pad[: pair + 2]).narrow(dim, 0, x.shape[dim])
    pad[pair + 1] = 1  # a zero at the end; token i now holds old token i + 1
    return F.pad(x, pad[: pair + 2]).narrow(dim, 1, x.shape[dim])


def _shift(x: torch.Tensor, spatial: int, temporal: int, causal: bool) -> torch.Tensor:
    """The shift with precomputed group sizes (keeps shape arithmetic out of traced graphs): slices,
    pad and one concatenation."""
    if spatial == 0 and temporal == 0:
        return x
    return torch.cat(shift_parts(x, spatial, temporal, causal), dim=-1)


def shift_parts(x: torch.Tensor, spatial: int, temporal: int, causal: bool) -> list[torch.Tensor]:
    """The shifted channel groups of ``x`` in channel order, before their concatenation: the four
    spatial groups, the ``T-1`` and ``T+1`` groups (when ``temporal > 0``), then the unshifted rest.
    (The streaming shift swaps the ``T-1`` part for the channels it carries from the previous step.)"""
    parts: list[torch.Tensor] = []
    start = 0
    if spatial > 0:
        parts.append(_shift_along(x[..., start : start + spatial], 3, True))
        parts.append(_shift_along(x[..., start + spatial : start + 2 * spatial], 3, False))
        parts.append(_shift_along(x[..., start + 2 * spatial : start + 3 * spatial], 2, True))
        parts.append(_shift_along(x[..., start + 3 * spatial : start + 4 * spatial], 2, False))
        start = 4 * spatial
    if temporal > 0:
        parts.append(_shift_along(x[..., start : start + temporal], 1, True))
        future = x[..., start + temporal : start + 2 * temporal]
        parts.append(future if causal else _shift_along(future, 1, False))
        start = start + 2 * temporal
    parts.append(x[..., start:])
    return parts


def shift_tokens(
    x: torch.Tensor,
    spatial_fraction: float = 1 / 3,
    temporal_fraction: float = 1 / 4,
    temporal: bool = True,
    causal: bool = False,
) -> torch.Tensor:
    """Shift channel groups of channels-last tokens ``(B, T, H, W, C)`` to neighbouring tokens.

    See the module docstring for the channel layout. ``temporal=False`` leaves the temporal groups'
    channels unshifted (no information crosses frames). Returns a new tensor of the same shape.
    """
    if x.dim() != 5:
        raise InputShapeError(
            f"shift_tokens expects channels-last tokens (B, T, H, W, C), got a {x.dim()}-D tensor of "
            f"shape {tuple(x.shape)}; for images use T = 1, e.g. x[:, None]"
        )
    groups = shift_group_sizes(x.shape[-1], spatial_fraction, temporal_fraction if temporal else 0.0)
    return _shift(x, groups.spatial, groups.temporal, causal)


def shift_tokens_reference(
    x: torch.Tensor,
    spatial_fraction: float = 1 / 3,
    temporal_fraction: float = 1 / 4,
    temporal: bool = True,
    causal: bool = False,
) -> torch.Tensor:
    """Slow, obviously correct shift with explicit loops over tokens and channels (for tests)."""
    batch, frames, height, width, channels = x.shape
    groups = shift_group_sizes(channels, spatial_fraction, temporal_fraction if temporal else 0.0)
    g, k = groups.spatial, groups.temporal
    # (dt, dh, dw): where each channel reads from, relative to the receiving token.
    offsets = [(0, 0, -1)] * g + [(0, 0, 1)] * g + [(0, -1, 0)] * g + [(0, 1, 0)] * g
    offsets += [(-1, 0, 0)] * k + [(0, 0, 0) if causal else (1, 0, 0)] * k
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
    ) -> None:
        super().__init__()
        groups = shift_group_sizes(dim, spatial_fraction, temporal_fraction if temporal else 0.0)
        self.dim = dim
        self.spatial = groups.spatial
        self.temporal = groups.temporal
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shift(x, self.spatial, self.temporal, self.causal)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, spatial={self.spatial}x4, temporal={self.temporal}x2, causal={self.causal}"
