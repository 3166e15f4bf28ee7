"""Online recognition: a causal VAST that takes one step of frames at a time, at O(1) cost per step.

With ``causal=True`` the only thing a block reads from another frame is the ``T-1`` channel group of
its shift (``k`` channels of the previous token frame, :mod:`vast.ops.shift`); every other layer works
on each token frame alone (BatchNorm in eval mode and LayerNorm are per token, patch embedding and
merging do not mix frames). So a step needs, per block, only those ``k`` channels of the previous step,
and the clip's temporal average pooling becomes a running mean of per-step pooled features: after ``t``
frames, :meth:`StreamingClassifier.step` returns what ``model(video[:, :, :t])`` returns, up to float
rounding, at ``1/t`` of its cost.
"""

from __future__ import annotations

import copy
from collections import deque

import torch
from torch import nn

from vast.errors import InputShapeError, VastError
from vast.models.affine_shift import AffineShiftMixer, AffineShiftTransformer, ChannelsLastGroupNorm
from vast.ops.shift import TokenShift, _shift


class NotStreamableError(VastError, ValueError):
    """A model whose output at a frame depends on later frames (or that is not a VAST model)."""


class CarriedShift(nn.Module):
    """A causal :class:`~vast.ops.shift.TokenShift` for one token frame at a time: its ``T-1`` channel
    group comes from :attr:`carried` (those channels of the previous step's input; zeros at the start of
    a stream, as the offline shift's zero padding), and the current frame's are kept for the next step."""

    def __init__(self, shift: TokenShift) -> None:
        super().__init__()
        self.dim, self.spatial, self.temporal = shift.dim, shift.spatial, shift.temporal
        self.carried: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start, stop = 4 * self.spatial, 4 * self.spatial + self.temporal
        past = self.carried if self.carried is not None else torch.zeros_like(x[..., start:stop])
        self.carried = x[..., start:stop].detach()
        shifted = _shift(x, self.spatial, self.temporal, causal=True)  # T-1 group: zeros for one frame
        return torch.cat([shifted[..., :start], past, shifted[..., stop:]], dim=-1)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, spatial={self.spatial}x4, carried={self.temporal}"


def check_streamable(model: nn.Module) -> None:
    """Raise :class:`NotStreamableError`, saying what to train instead, unless ``model`` is a causal VAST."""
    if not isinstance(model, AffineShiftTransformer) or not model.video:
        raise NotStreamableError(
            f"streaming takes a VAST video model (vast_*), not {type(model).__name__}; "
            "train one with --set model.options.causal=true"
        )
    shifts = [m.shift for m in model.modules() if isinstance(m, AffineShiftMixer)]
    if not shifts or not all(isinstance(s, TokenShift) for s in shifts):
        raise NotStreamableError(
            "streaming takes the reference model (vast.create_model or a checkpoint), not one rebuilt by "
            "fuse_for_inference; stream the model before fusing it"
        )
    if any(s.temporal > 0 and not s.causal for s in shifts):
        raise NotStreamableError(
            "this model's temporal shift reads the next frame, so it cannot run online; train a causal model "
            "(--set model.options.causal=true), or one without temporal shift"
        )
    if any(isinstance(m, ChannelsLastGroupNorm) for m in model.modules()):
        raise NotStreamableError(
            "this model's GroupNorm pools over all frames of a clip, so a frame's features depend on later "
            "frames; train a causal model with norm=batchnorm (the default) or layernorm"
        )


class StreamingClassifier(nn.Module):
    """A trained causal VAST run one step of frames at a time.

    ``reset()`` starts a new stream; ``step(frames)`` takes the next ``(B, 3, t_patch, H, W)`` normalised
    frames and returns ``(B, num_classes)`` logits of the temporal average over every step so far, equal to
    the offline model's on all frames seen so far. With ``window=K`` the average covers the last ``K``
    steps only (a sliding window over the stream: the output then no longer equals the offline model on
    the whole prefix, but the network's own causal state still reaches back over every frame).

    The wrapped model is a copy in eval mode (the argument is left untouched). Every block carries only
    the channels its causal shift needs from the previous step: see :meth:`carried_elements`.
    """

    def __init__(self, model: nn.Module, window: int | None = None) -> None:
        super().__init__()
        check_streamable(model)
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive number of steps, got {window}")
        self.model = copy.deepcopy(model).eval()
        self.window = window
        self.shifts: list[CarriedShift] = []
        for mixer in self.model.modules():
            if isinstance(mixer, AffineShiftMixer):
                mixer.shift = CarriedShift(mixer.shift)
                self.shifts.append(mixer.shift)
        self.t_patch = self.model.t_patch
        self.steps = 0
        self._pooled_sum: torch.Tensor | None = None
        self._recent: deque[torch.Tensor] = deque(maxlen=window)

    def reset(self) -> None:
        """Start a new stream: no carried channels, no pooled features."""
        for shift in self.shifts:
            shift.carried = None
        self.steps = 0
        self._pooled_sum = None
        self._recent.clear()

    @torch.inference_mode()
    def step(self, frames: torch.Tensor) -> torch.Tensor:
        """Logits after the next ``t_patch`` frames ``(B, 3, t_patch, H, W)`` of the stream."""
        if frames.dim() != 5 or frames.shape[2] != self.t_patch:
            raise InputShapeError(
                f"step takes the next {self.t_patch} frame(s) as (B, 3, {self.t_patch}, H, W); "
                f"got {tuple(frames.shape)}"
            )
        carried = self.shifts[0].carried if self.shifts else None
        if carried is not None and carried.shape[0] != frames.shape[0]:
            raise InputShapeError(
                f"this stream has batch size {carried.shape[0]}, got {frames.shape[0]}; reset() to start another"
            )
        tokens = self.model.forward_features(frames)  # (B, 1, H', W', C)
        pooled = tokens.flatten(1, -2).mean(1)  # this step's spatial average
        self.steps += 1
        if self.window is None:
            self._pooled_sum = pooled if self._pooled_sum is None else self._pooled_sum + pooled
            mean = self._pooled_sum / self.steps
        else:
            self._recent.append(pooled)
            mean = torch.stack(tuple(self._recent)).mean(0)
        return self.model.forward_head(mean[:, None, None, None, :])  # the model's own head on the mean

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.step(frames)

    def carried_elements(self) -> int:
        """Numbers carried between steps per stream (per batch item): every block's ``T-1`` channels over
        its token map, for the last step's frame size (0 before the first step)."""
        return sum(s.carried[0].numel() for s in self.shifts if s.carried is not None)
