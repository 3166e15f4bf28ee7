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

The layout is written once, as a plan (:func:`shift_plan`): one :class:`ShiftGroup` ``(first, end, dim,
step)`` per channel group, where token ``i`` along ``dim`` receives token ``i + step``; a model's blocks
each get their own offset from :func:`block_offsets`. Every form of the shift reads the plan and nothing
else: the reference :class:`TokenShift` (pad and concatenate), :class:`InferenceTokenShift` (one memory
pass, for inference) and :class:`CarriedShift` (one token frame at a time, for streaming). A change of
layout is an edit of :func:`shift_plan` alone (``tests/ops/test_shift_layout.py`` swaps it for another
and checks every form against :func:`plan_reference`).

The reference shift is written with slices, ``F.pad`` and one ``torch.cat``: no in-place slice
assignment, so it runs the same in eager mode, under autograd, and in every tracer and exporter
(TorchScript, FX, ``torch.export``, ONNX), and ``torch.compile`` fuses it into its consumer.

Two slow, obviously correct versions are there for the tests: :func:`plan_reference` applies any plan
with loops over tokens and channels, and :func:`shift_tokens_reference` writes the default layout of the
table above out a second time, on purpose independently of :func:`shift_plan`, as its check.
"""

import inspect
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vast.errors import ConfigError, InputShapeError


class ShiftGroups(NamedTuple):
    """Channel counts of the shift: ``spatial`` per spatial group (4 of them), ``temporal`` per
    temporal group (2 of them)."""

    spatial: int
    temporal: int

    @property
    def shifted(self) -> int:
        return 4 * self.spatial + 2 * self.temporal


class ShiftGroup(NamedTuple):
    """Channels ``[first, end)``: token ``i`` along ``dim`` (1 = T, 2 = H, 3 = W) receives token
    ``i + step`` (zero outside the clip); ``step = 0`` leaves them in place."""

    first: int
    end: int
    dim: int
    step: int


ShiftPlan = list[ShiftGroup]


def shift_group_sizes(channels: int, spatial_fraction: float = 1 / 3, temporal_fraction: float = 1 / 4) -> ShiftGroups:
    """Channels per group for a tensor with ``channels`` channels.

    ``spatial_fraction`` of the channels are split over the four spatial groups and
    ``temporal_fraction`` over the two temporal groups (both rounded down to whole channels).
    """
    if not 0.0 <= spatial_fraction <= 1.0 or not 0.0 <= temporal_fraction <= 1.0:
        raise ValueError(
            f"shift fractions must lie in [0, 1], got spatial={spatial_fraction}, temporal={temporal_fraction}"
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
    neighbouring unshifted groups merged. This is the one place the layout is written."""
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
        if step == 0 and plan and plan[-1].step == 0:
            plan[-1] = ShiftGroup(plan[-1].first, end, 1, 0)
        else:
            plan.append(ShiftGroup(first, end, dim, step))
    return plan


def block_offsets(temporal_offsets: int | Sequence[int], blocks: int) -> list[int]:
    """Each block's temporal shift offset: one number for every block, or a schedule repeated over the
    blocks in depth order (``(1, 2)``: 1, 2, 1, 2, ...)."""
    schedule = list(temporal_offsets) if isinstance(temporal_offsets, (list, tuple)) else [temporal_offsets]
    if not schedule or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in schedule):
        raise ConfigError(
            f"temporal_offsets must be a number of frames >= 1 or a list of them (e.g. [1, 2]), "
            f"got {temporal_offsets!r}"
        )
    return [schedule[i % len(schedule)] for i in range(blocks)]


def check_plan(plan: Sequence[tuple[int, int, int, int]], channels: int) -> ShiftPlan:
    """``plan`` as :class:`ShiftGroup` entries, after checking that its groups cover ``[0, channels)`` in
    order and move along T, H or W; a ``ValueError`` names the first group that does not."""
    checked: ShiftPlan = []
    end = 0
    for group in map(ShiftGroup._make, plan):
        if group.first != end or group.end <= group.first or group.dim not in (1, 2, 3):
            raise ValueError(
                f"a shift plan's groups cover channels 0..{channels} in order, along dim 1, 2 or 3 (T, H, W); "
                f"got {tuple(group)} after channel {end}"
            )
        checked.append(group)
        end = group.end
    if end != channels:
        raise ValueError(f"the shift plan covers channels 0..{end}, not all {channels}")
    return checked


def moves(plan: ShiftPlan) -> bool:
    """Whether any group of ``plan`` moves (else the shift is the identity)."""
    return any(group.step != 0 for group in plan)


def reads_future(plan: ShiftPlan) -> bool:
    """Whether a token reads a later frame under ``plan`` (then the shift cannot stream)."""
    return any(group.dim == 1 and group.step > 0 for group in plan)


def past_groups(plan: ShiftPlan) -> list[int]:
    """Indices of the groups of ``plan`` that read an earlier frame, what a stream must carry."""
    return [i for i, group in enumerate(plan) if group.dim == 1 and group.step < 0]


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


def shift_parts(x: torch.Tensor, plan: list[ShiftGroup]) -> list[torch.Tensor]:
    """The shifted channel groups of ``x`` in channel order, before their concatenation."""
    parts: list[torch.Tensor] = []
    for first, end, dim, step in plan:
        part = x[..., first:end]
        parts.append(part if step == 0 else shift_along(part, dim, step))
    return parts


def apply_shift(x: torch.Tensor, plan: list[ShiftGroup]) -> torch.Tensor:
    """The shift of ``plan``: slices, pad and one concatenation (``x`` itself when nothing moves)."""
    if len(plan) == 1 and plan[0][3] == 0:
        return x
    return torch.cat(shift_parts(x, plan), dim=-1)


def shift_into(out: torch.Tensor, x: torch.Tensor, plan: list[ShiftGroup]) -> torch.Tensor:
    """Write the shift of ``plan`` of ``x`` into ``out`` (same shape), every element once, zeros at the
    borders (in-place slice writes: eager inference only)."""
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


def plan_reference(x: torch.Tensor, plan: Sequence[tuple[int, int, int, int]]) -> torch.Tensor:
    """Slow, obviously correct shift of any ``plan`` with explicit loops over tokens and channels (for tests)."""
    channels = x.shape[-1]
    source = [(0, 0, 0)] * channels  # (dt, dh, dw): where each channel reads from, relative to the token
    for first, end, dim, step in check_plan(plan, channels):
        for c in range(first, end):
            source[c] = (step if dim == 1 else 0, step if dim == 2 else 0, step if dim == 3 else 0)
    return _loop_shift(x, source)


def shift_tokens_reference(x: torch.Tensor, **options: Any) -> torch.Tensor:
    """Slow, obviously correct shift of the default layout with explicit loops over tokens and channels,
    its groups written out from the module docstring's table, not from :func:`shift_plan` (for tests).
    ``options`` are :func:`shift_tokens`'s keyword arguments, with its defaults."""
    bound = inspect.signature(shift_tokens).bind(x, **options)  # a misspelt option is a TypeError here too
    bound.apply_defaults()
    layout = bound.arguments
    channels = x.shape[-1]
    temporal_fraction = layout["temporal_fraction"] if layout["temporal"] else 0.0
    groups = shift_group_sizes(channels, layout["spatial_fraction"], temporal_fraction)
    g, k, d = groups.spatial, groups.temporal, layout["temporal_offset"]
    source = [(0, 0, -1)] * g + [(0, 0, 1)] * g + [(0, -1, 0)] * g + [(0, 1, 0)] * g
    source += [(-d, 0, 0)] * k + [(0, 0, 0) if layout["causal"] else (d, 0, 0)] * k
    source += [(0, 0, 0)] * (channels - len(source))
    return _loop_shift(x, source)


def _loop_shift(x: torch.Tensor, source: list[tuple[int, int, int]]) -> torch.Tensor:
    """Token ``(t, h, w)``, channel ``c`` of the output is token ``(t + dt, h + dh, w + dw)`` of ``x``, with
    ``(dt, dh, dw) = source[c]``, or zero outside the clip."""
    batch, frames, height, width, channels = x.shape
    rows = []
    for t in range(frames):
        for h in range(height):
            for w in range(width):
                values = []
                for c, (dt, dh, dw) in enumerate(source):
                    ts, hs, ws = t + dt, h + dh, w + dw
                    inside = 0 <= ts < frames and 0 <= hs < height and 0 <= ws < width
                    values.append(x[:, ts, hs, ws, c] if inside else torch.zeros_like(x[:, 0, 0, 0, c]))
                rows.append(torch.stack(values, dim=-1))
    return torch.stack(rows, dim=1).reshape(batch, frames, height, width, channels)


# --------------------------------------------------------------------------------------------------
# The shift as modules: the reference, its one-pass inference form and its streaming form
# --------------------------------------------------------------------------------------------------


class TokenShift(nn.Module):
    """The shift as a module with its channel groups fixed at construction (no parameters): the plan of
    :func:`shift_plan` for these options. ``spatial``, ``temporal`` (channels per group), ``causal`` and
    ``offset`` name the options; what the module does is ``plan``."""

    plan: list[ShiftGroup]  # for TorchScript: a list of named tuples, not of plain ones (so no postponed
    # annotations in this module: TorchScript reads this one at run time)

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
        self.plan = check_plan(shift_plan(dim, groups, causal, temporal_offset), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply_shift(x, self.plan)

    def extra_repr(self) -> str:
        return _describe(self)


def _describe(shift: nn.Module) -> str:
    """The options of a :class:`TokenShift` or :class:`InferenceTokenShift`, for its ``repr``."""
    offset = f", offset={shift.offset}" if shift.temporal else ""
    return f"dim={shift.dim}, spatial={shift.spatial}x4, temporal={shift.temporal}x2{offset}, causal={shift.causal}"


def _portable(x: torch.Tensor) -> bool:
    """Whether ``x`` flows through a tracer, exporter or compiler, which need the reference form."""
    if torch.jit.is_tracing() or isinstance(x, torch.fx.Proxy) or torch.compiler.is_compiling():
        return True
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting is not None and is_exporting())


class InferenceTokenShift(nn.Module):
    """A :class:`TokenShift` that writes its output in one memory pass (:func:`shift_into`).

    :func:`apply_shift` pads each shifted group and concatenates the groups, so the shifted channels are
    written twice; here each group of the same plan is copied straight into a new tensor (faster in
    eager inference; ``vast bench`` reports the shift's share of a forward pass). That form has no
    backward pass and writes slices in place, so gradients, scripting, tracing, exporting and compiling
    take the reference form instead.
    """

    plan: list[ShiftGroup]

    def __init__(self, shift: TokenShift) -> None:
        super().__init__()
        self.dim, self.spatial, self.temporal, self.causal = shift.dim, shift.spatial, shift.temporal, shift.causal
        self.offset = shift.offset
        self.plan = list(shift.plan)
        self.moves = moves(self.plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # noqa: SIM102 (TorchScript skips only this exact test)
            if self.moves and not (_portable(x) or x.requires_grad):
                return shift_into(torch.empty_like(x, memory_format=torch.contiguous_format), x, self.plan)
        return apply_shift(x, self.plan)

    def extra_repr(self) -> str:
        return _describe(self)


class CarriedShift(nn.Module):
    """A causal :class:`TokenShift` for one token frame at a time (streaming).

    The plan's groups that read a past frame (``T-d``) take their channels of ``d`` steps back from
    :attr:`carried`: one tensor ``(B, D, H, W, K)`` holding, for the last ``D`` steps (the deepest such
    group's ``d``, oldest first), the ``K`` channels of those groups side by side; zeros at the start
    of a stream, as the offline shift's zero padding. The current frame's channels join it for the next
    steps. A plan that reads a later frame cannot stream (``ValueError``).
    """

    def __init__(self, shift: TokenShift) -> None:
        super().__init__()
        self.dim = shift.dim
        self.plan = list(shift.plan)
        if reads_future(self.plan):
            raise ValueError("this shift reads later frames: only a causal shift runs one frame at a time")
        self.past = past_groups(self.plan)
        self.depth = max((-self.plan[i].step for i in self.past), default=0)
        self.carried: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = shift_parts(x, self.plan)  # one token frame: the past groups read only zeros, replaced below
        if not self.past:  # nothing crosses frames (a model without temporal shift)
            self.carried = [x[..., :0]]
            return torch.cat(parts, dim=-1)
        current = torch.cat([x[..., self.plan[i].first : self.plan[i].end] for i in self.past], dim=-1)
        if self.carried is None:
            frames = torch.zeros_like(current).expand(-1, self.depth, -1, -1, -1)
        else:
            frames = self.carried[0]
        channel = 0
        for i in self.past:
            first, end, _, step = self.plan[i]
            back = self.depth + step  # frames[:, j] is the token frame depth - j steps back
            parts[i] = frames[:, back : back + 1, ..., channel : channel + end - first]
            channel += end - first
        self.carried = [torch.cat((frames[:, 1:], current), dim=1)]
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        carried = sum(self.plan[i].end - self.plan[i].first for i in self.past)
        return f"dim={self.dim}, carried={carried}x{self.depth}"
