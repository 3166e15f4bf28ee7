"""Online recognition: a causal VAST that takes one step of frames at a time, at O(1) cost per step.

With ``causal=True`` a block reads other frames in two ways only: the ``T-d`` channel group of its
shift (``k`` channels of the token frame ``d`` steps back, as the shift's plan says,
:mod:`vast.ops.shift`), and, with a temporal context term, the running mean of its input over the
frames so far. Every other layer works on each token frame alone (BatchNorm in eval mode and LayerNorm
are per token, patch embedding and merging do not mix frames). So a step needs, per block, only those
``k`` channels of the last ``d`` steps and the running sum and count of its input (the streaming forms
beside the layers: :class:`~vast.ops.shift.CarriedShift`, :class:`~vast.ops.context.CarriedContext`),
and the clip's temporal average pooling becomes a running mean of per-step pooled features: after
``t`` frames, :meth:`StreamingClassifier.step` returns what ``model(video[:, :, :t])`` returns, up to
float rounding, at ``1/t`` of its cost.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Sequence

import torch
from torch import nn

from vast.errors import ConfigError, InputShapeError, VastError
from vast.models.affine_shift import AffineShiftTransformer
from vast.ops.context import CarriedContext, NoContext, TemporalContext
from vast.ops.mixer import AffineShiftMixer
from vast.ops.norm import ChannelsLastGroupNorm
from vast.ops.shift import CarriedShift, TokenShift, reads_future

__all__ = ["CarriedShift", "NotStreamableError", "StreamingClassifier", "StreamingStep", "check_streamable"]


class NotStreamableError(VastError, ValueError):
    """A model whose output at a frame depends on later frames (or that is not a VAST model)."""


def check_streamable(model: nn.Module) -> None:
    """Raise :class:`NotStreamableError`, saying what to train instead, unless ``model`` is a causal VAST."""
    if not isinstance(model, AffineShiftTransformer) or not model.video:
        raise NotStreamableError(
            f"streaming takes a VAST video model (vast_*), not {type(model).__name__}; "
            "train one with --set model.options.causal=true"
        )
    mixers = [m for m in model.modules() if isinstance(m, AffineShiftMixer)]
    if not mixers or not all(isinstance(m.shift, TokenShift) for m in mixers):
        raise NotStreamableError(
            "streaming takes the reference model (vast.create_model or a checkpoint), not one rebuilt by "
            "fuse_for_inference; stream the model before fusing it"
        )
    if any(reads_future(m.shift.plan) for m in mixers):
        raise NotStreamableError(
            "this model's temporal shift reads the next frame, so it cannot run online; train a causal model "
            "(--set model.options.causal=true), or one without temporal shift"
        )
    if any(isinstance(m.context, TemporalContext) and not m.context.causal for m in mixers):
        raise NotStreamableError(
            "this model's temporal context averages over the whole clip, so it cannot run online; train a "
            "causal model (--set model.options.causal=true), whose context is a running mean"
        )
    if not all(isinstance(m.context, (TemporalContext, NoContext)) for m in mixers):
        raise NotStreamableError("streaming takes the reference model's temporal context, not a replaced one")
    if any(isinstance(m, ChannelsLastGroupNorm) for m in model.modules()):
        raise NotStreamableError(
            "this model's GroupNorm pools over all frames of a clip, so a frame's features depend on later "
            "frames; train a causal model with norm=batchnorm (the default) or layernorm"
        )


class StreamingStep(nn.Module):
    """One step of a stream as a pure function of its state, for export (ONNX, ``torch.export``):

    ``forward(frames, pooled_sum, steps, *carried) -> (logits, pooled_sum, steps, *carried)``

    ``frames`` is ``(B, 3, t_patch, H, W)``; ``pooled_sum`` ``(B, C)`` the sum of every step's pooled
    features, ``steps`` a one-element float tensor counting them, and ``carried`` what the blocks carry,
    in block order: for each shift its ``T-d`` channels of the last ``d`` steps ``(B, d, H', W', k)``
    (:class:`~vast.ops.shift.CarriedShift`),
    and for each temporal context the running sum of its input and the number of steps summed.
    :meth:`initial_state` gives the state a stream starts from. It owns a copy of the model in eval mode
    (the argument is left untouched).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        check_streamable(model)
        self.model = copy.deepcopy(model).eval()
        self.carriers: list[CarriedShift | CarriedContext] = []
        for mixer in self.model.modules():
            if isinstance(mixer, AffineShiftMixer):
                mixer.shift = CarriedShift(mixer.shift)
                self.carriers.append(mixer.shift)
                if isinstance(mixer.context, TemporalContext):
                    mixer.context = CarriedContext(mixer.context)
                    self.carriers.append(mixer.context)
        self.t_patch = self.model.t_patch
        self.eval()

    @property
    def shifts(self) -> list[CarriedShift]:
        return [c for c in self.carriers if isinstance(c, CarriedShift)]

    def state_count(self) -> int:
        """How many tensors the blocks carry (``len(carried)``)."""
        return sum(1 if isinstance(c, CarriedShift) else 2 for c in self.carriers)

    def train(self, mode: bool = True) -> StreamingStep:
        """Always eval: a stream uses BatchNorm's running statistics (batch statistics would mix frames)."""
        return super().train(False)

    def features(self, frames: torch.Tensor, carried: Sequence[torch.Tensor] | None) -> tuple[torch.Tensor, list]:
        """This step's pooled features ``(B, C)`` and the blocks' new carried tensors (``carried=None``:
        the start of a stream)."""
        position = 0
        for carrier in self.carriers:
            count = 1 if isinstance(carrier, CarriedShift) else 2
            carrier.carried = None if carried is None else list(carried[position : position + count])
            position += count
        if carried is not None and position != len(carried):
            raise ValueError(f"the blocks carry {position} tensors, got {len(carried)}")
        tokens = self.model.forward_features(frames)  # (B, 1, H', W', C)
        new = [state for carrier in self.carriers for state in carrier.carried]
        for carrier in self.carriers:
            carrier.carried = None  # the state lives in the caller's tensors, not in the modules
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
        pooled, carried = self.features(torch.zeros_like(frames), None)
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
    shift needs from the last ``d`` steps and, with a temporal context, the running sum of its input
    (:meth:`carried_elements`), and the running sum of pooled features.
    """

    def __init__(self, model: nn.Module, window: int | None = None, core: nn.Module | None = None) -> None:
        super().__init__()
        if window is not None and window < 1:
            raise ValueError(f"window must be a positive number of steps, got {window}")
        if core is not None and window is not None:
            raise ConfigError("a windowed stream averages the steps itself; an int8 step pools the whole stream: "
                              "drop the window or the quantisation")  # fmt: skip
        # ``core``: another form of the step with the same call (the int8 one, vast.streaming.quantize)
        self.core = core if core is not None else StreamingStep(model)
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
