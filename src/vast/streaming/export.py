"""The streaming step exported with its state as explicit inputs and outputs (ONNX, ``torch.export``).

A deployed stream keeps the state itself: it calls the exported step with the next frames and the
state the previous call returned, starting from :meth:`StreamingStep.initial_state` (all zeros). The
names are ``frames, pooled_sum, steps, carried_0 ... carried_{N-1}`` in, and ``logits, pooled_sum_next,
steps_next, carried_0_next ...`` out, in that order.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vast.errors import ConfigError
from vast.streaming.classifier import StreamingStep

STREAM_FORMATS = ("onnx", "exported")


def state_names(step: StreamingStep) -> tuple[list[str], list[str]]:
    """Input and output names of the exported step."""
    carried = [f"carried_{i}" for i in range(step.state_count())]
    inputs = ["frames", "pooled_sum", "steps", *carried]
    outputs = ["logits", "pooled_sum_next", "steps_next", *(f"{name}_next" for name in carried)]
    return inputs, outputs


def export_streaming_step(model: nn.Module, frame_shape: tuple[int, ...], path: str | Path, fmt: str = "onnx") -> Path:
    """Write the streaming step of the causal VAST ``model`` for steps of ``frame_shape``
    ``(B, 3, t_patch, H, W)`` to ``path`` as ONNX (``fmt="onnx"``) or a ``torch.export`` program (``"exported"``)."""
    if fmt not in STREAM_FORMATS:
        raise ConfigError(f"the streaming step exports as {' or '.join(STREAM_FORMATS)}, not {fmt!r}")
    step = StreamingStep(model)
    frames = torch.zeros(frame_shape)
    example = (frames, *step.initial_state(frames))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        if fmt == "exported":
            torch.export.save(torch.export.export(step, example), str(path))
        else:
            inputs, outputs = state_names(step)
            torch.onnx.export(
                step, example, str(path), input_names=inputs, output_names=outputs, dynamo=True, external_data=False
            )
    return path
