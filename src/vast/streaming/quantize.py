"""The streaming step in int8: :class:`~vast.streaming.classifier.StreamingStep` quantised by the same
PT2E flow as offline models (:mod:`vast.deploy.quantize`).

The step is captured with its state as inputs and outputs, so the state stays fp32: the carried
shifted channels and the running sums pass through the int8 graph untouched, and only the matmuls of
each step round. A static step is calibrated on streams: every calibration clip is fed step by step,
with the state each step returns, so its activation ranges are those of one step of a stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch._inductor import config as inductor_config

from vast.deploy.quantize import (
    QuantizationInfo,
    calibration_batches,
    check_calibration,
    check_quantizable,
    graph_weight_bytes,
    quantize_graph,
)
from vast.errors import InputShapeError
from vast.ops.fuse import InferenceOnly
from vast.ops.norm import ChannelsLastBatchNorm
from vast.streaming.classifier import StreamingClassifier, StreamingStep


class QuantizedStreamingStep(InferenceOnly):
    """A :class:`StreamingStep` in int8 for steps of one frame shape: ``forward(frames, *state)`` as the
    fp32 step's; :meth:`initial_state` is the fp32 step's (zeros)."""

    def __init__(
        self, step: StreamingStep, graph: nn.Module, info: QuantizationInfo, frame_shape: tuple, compiled: bool
    ) -> None:
        super().__init__()
        self.reference = step  # for initial_state and the model's attributes; it does not run the stream
        self.graph = graph
        self.info = info
        self.frame_shape = tuple(frame_shape)
        self.t_patch = step.t_patch
        self.runner = torch.compile(graph) if compiled else graph
        self.training = False

    @property
    def model(self) -> nn.Module:
        return self.reference.model

    def train(self, mode: bool = True) -> QuantizedStreamingStep:
        if mode:
            raise RuntimeError("an int8 streaming step cannot be trained")
        return self

    def initial_state(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.reference.initial_state(frames)

    def forward(self, frames: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if tuple(frames.shape) != self.frame_shape:
            raise InputShapeError(
                f"this int8 stream was quantised for steps of {self.frame_shape}, got {tuple(frames.shape)}; "
                "quantise again for that shape"
            )
        with torch.no_grad(), inductor_config.patch(freezing=True):  # as vast.deploy.quantize
            return tuple(self.runner(frames, *state))

    def weight_bytes(self) -> int:
        """Bytes of the constants the step's graph reads: int8 weights, their scales, the fp32 rest."""
        return graph_weight_bytes(self.graph)


class _FrozenBatchNorm(nn.Module):
    """An eval-mode :class:`~vast.ops.norm.ChannelsLastBatchNorm` as what it computes, ``x * scale + shift``
    per channel: the captured step then has no BatchNorm for ``convert_pt2e``'s conv-BN pass, which
    traces 96 patterns (many seconds) to find none in this model."""

    def __init__(self, norm: ChannelsLastBatchNorm) -> None:
        super().__init__()
        bn = norm.bn
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", bn.bias.detach() - bn.running_mean * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


def _frozen_norms(step: StreamingStep) -> StreamingStep:
    for name, module in list(step.named_modules()):
        if isinstance(module, ChannelsLastBatchNorm):
            owner, _, attr = name.rpartition(".")
            setattr(step.get_submodule(owner) if owner else step, attr, _FrozenBatchNorm(module))
    return step


def quantize_streaming_step(
    model: nn.Module,
    mode: str,
    frame_shape: tuple[int, ...],
    calibration: Iterable[Any] | None = None,
    compile: bool = True,
    reduce_range: bool | None = None,
) -> QuantizedStreamingStep:
    """The int8 streaming step of the causal ``model`` for steps of ``frame_shape`` ``(B, 3, t_patch, H, W)``.
    ``static`` calibrates on ``calibration``: clip batches ``(B, 3, T, H, W)`` (or (clips, labels) pairs)
    of the same ``B``, each fed as a stream of ``T / t_patch`` steps. ``reduce_range``: as
    :func:`vast.deploy.quantize`'s."""
    check_quantizable(model, mode)
    check_calibration(mode, calibration)
    step = _frozen_norms(StreamingStep(model))
    frames = torch.zeros(frame_shape)
    example = (frames, *step.initial_state(frames))

    def calibrate(prepared: nn.Module) -> int:
        if mode == "dynamic":
            prepared(*example)
            return 0
        seen = 0
        for clips in calibration_batches(calibration):
            state = step.initial_state(clips[:, :, : step.t_patch])
            for start in range(0, clips.shape[2] - step.t_patch + 1, step.t_patch):
                _, *state = prepared(clips[:, :, start : start + step.t_patch], *state)
            seen += clips.shape[0]
        return seen

    graph, info = quantize_graph(step, example, mode, calibrate, reduce_range=reduce_range)
    return QuantizedStreamingStep(step, graph, info, tuple(frame_shape), compiled=compile)


def quantized_stream(
    model: nn.Module,
    mode: str,
    frame_shape: tuple[int, ...],
    calibration: Iterable[Any] | None = None,
    compile: bool = True,
) -> StreamingClassifier:
    """A :class:`StreamingClassifier` whose steps run in int8 (the average over the whole stream)."""
    return StreamingClassifier(model, core=quantize_streaming_step(model, mode, frame_shape, calibration, compile))
