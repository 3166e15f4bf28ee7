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
from collections.abc import Sequence

import torch
from torch import nn

from vast.errors import InputShapeError, VastError
from vast.models.affine_shift import AffineShiftMixer, AffineShiftTransformer, ChannelsLastGroupNorm
from vast.ops.shift import TokenShift, _shift, shift_parts


class NotStreamableError(VastError, ValueError):
    """A model whose output at a frame depends on later frames (or that is not a VAST model)."""


class CarriedShift(nn.Module):
    """A causal :class:`~vast.ops.shift.TokenShift` for one token frame at a time: its ``T-1`` channel
    group comes from the previous step (:attr:`carried`; zeros at the start of a stream, as the offline
    shift's zero padding), and the current frame's channels are kept for the next step."""

    def __init__(self, shift: TokenShift) -> None:
        super().__init__()
        self.dim, self.spatial, self.temporal = shift.dim, shift.spatial, shift.temporal
        self.carried: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal == 0:  # nothing crosses frames (a model without temporal shift)
            self.carried = x[..., :0]
            return _shift(x, self.spatial, 0, causal=True)
        start, stop = 4 * self.spatial, 4 * self.spatial + self.temporal
        past = self.carried if self.carried is not None else torch.zeros_like(x[..., start:stop])
        self.carried = x[..., start:stop]
        parts = shift_parts(x, self.spatial, self.temporal, causal=True)
        parts[4 if self.spatial else 0] = past  # the T-1 group: the previous step's channels
        return torch.cat(parts, dim=-1)

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


class StreamingStep(nn.Module):
    """One step of a stream as a pure function of its state, for export (ONNX, ``torch.export``):

    ``forward(frames, pooled_sum, steps, *carried) -> (logits, pooled_sum, steps, *carried)``

    ``frames`` is ``(B, 3, t_patch, H, W)``; ``pooled_sum`` ``(B, C)`` the sum of every step's pooled
    features, ``steps`` a one-element float tensor counting them, and ``carried`` every block's ``T-1``
    channels of the previous step. :meth:`initial_state` gives the state a stream starts from. It owns a
    copy of the model in eval mode (the argument is left untouched).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        check_streamable(model)
        self.model = copy.deepcopy(model).eval()
        self.shifts = []
        for mixer in self.model.modules():
            if isinstance(mixer, AffineShiftMixer):
                mixer.shift = CarriedShift(mixer.shift)
                self.shifts.append(mixer.shift)
        self.t_patch = self.model.t_patch
        self.eval()

    def train(self, mode: bool = True) -> StreamingStep:
        """Always eval: a stream uses BatchNorm's running statistics (batch statistics would mix frames)."""
        return super().train(False)

    def features(self, frames: torch.Tensor, carried: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor, list]:
        """This step's pooled features ``(B, C)`` and the blocks' new carried channels."""
        for shift, state in zip(self.shifts, carried, strict=True):
            shift.carried = state
        tokens = self.model.forward_features(frames)  # (B, 1, H', W', C)
        new = [shift.carried for shift in self.shifts]
        for shift in self.shifts:
            shift.carried = None  # the state lives in the caller's tensors, not in the modules
        return tokens.flatten(1, -2).mean(1), new

    def classify(self, mean: torch.Tensor) -> torch.Tensor:
        """Logits of mean pooled features ``(B, C)``, through the model's own head."""
        return self.model.forward_head(mean[:, None, None, None, :])

    def forward(
        self, frames: torch.Tensor, pooled_sum: torch.Tensor, steps: torch.Tensor, *carried: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        pooled, carried_next = self.features(frames, carried)
        pooled_sum = pooled_sum + pooled
        steps = steps + 1
        return (self.classify(pooled_sum / steps), pooled_sum, steps, *carried_next)

    @torch.no_grad()
    def initial_state(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(pooled_sum, steps, *carried)`` of a new stream of frames shaped like ``frames``: zeros (the
        offline shift's padding before the first frame), shaped by one probe step."""
        pooled, carried = self.features(torch.zeros_like(frames), [None] * len(self.shifts))
        zeros = [torch.zeros_like(state) for state in carried]
        return (torch.zeros_like(pooled), torch.zeros(1, dtype=pooled.dtype, device=pooled.device), *zeros)


class StreamingClassifier(nn.Module):
    """A trained causal VAST run one step of frames at a time.

    ``reset()`` starts a new stream; ``step(frames)`` takes the next ``(B, 3, t_patch, H, W)`` normalised
    frames and returns ``(B, num_classes)`` logits of the temporal average over every step so far, equal to
    the offline model's on all frames seen so far. With ``window=K`` the average covers the last ``K``
    steps only (a sliding window over the stream: the output then no longer equals the offline model on
    the whole prefix, though the network's causal state still reaches back over every frame).

    The state is what :class:`StreamingStep` takes and returns: per block only the channels its causal
    shift needs from the previous step (:meth:`carried_elements`), and the running sum of pooled features.
    """

    def __init__(self, model: nn.Module, window: int | None = None) -> None:
        super().__init__()
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive number of steps, got {window}")
        self.core = StreamingStep(model)
        self.t_patch = self.core.t_patch
        self.window = window
        self.state: tuple[torch.Tensor, ...] | None = None
        self._frame_shape: tuple[int, ...] = ()
        self._recent: deque[torch.Tensor] = deque(maxlen=window)

    @property
    def model(self) -> nn.Module:
        """The copy of the model that runs the stream."""
        return self.core.model

    @property
    def steps(self) -> int:
        return 0 if self.state is None else int(self.state[1].item())

    def reset(self) -> None:
        """Start a new stream: nothing carried, nothing pooled."""
        self.state = None
        self._recent.clear()

    @torch.inference_mode()
    def step(self, frames: torch.Tensor) -> torch.Tensor:
        """Logits after the next ``t_patch`` frames ``(B, 3, t_patch, H, W)`` of the stream."""
        if frames.dim() != 5 or frames.shape[2] != self.t_patch:
            raise InputShapeError(
                f"step takes the next {self.t_patch} frame(s) as (B, 3, {self.t_patch}, H, W); "
                f"got {tuple(frames.shape)}"
            )
        if self.state is None:
            self.state = self.core.initial_state(frames)
            self._frame_shape = tuple(frames.shape)
        elif tuple(frames.shape) != self._frame_shape:
            raise InputShapeError(
                f"this stream's steps are {self._frame_shape}, got {tuple(frames.shape)}; reset() to start another"
            )
        if self.window is None:
            logits, *self.state = self.core(frames, *self.state)
            self.state = tuple(self.state)
            return logits
        pooled, carried = self.core.features(frames, self.state[2:])
        self._recent.append(pooled)
        self.state = (self.state[0] + pooled, self.state[1] + 1, *carried)
        return self.core.classify(torch.stack(tuple(self._recent)).mean(0))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.step(frames)

    def carried_elements(self) -> int:
        """Numbers carried from one step to the next by the blocks, per stream (batch item)."""
        return 0 if self.state is None else sum(state[0].numel() for state in self.state[2:])
