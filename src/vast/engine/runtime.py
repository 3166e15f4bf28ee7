"""What a training or evaluation step needs around the model: the precision it runs in, the plain
model inside its wrappers, the input it takes, and the training options it supports."""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vast.errors import ConfigError

_logger = logging.getLogger(__name__)

# A training option -> the model method that turns it on. A model without the method trains without
# the option (one logged line): the study's peers, torchvision's and timm's models, have neither.
TRAINING_CAPABILITIES = {
    "memory_lean": "set_memory_lean",
    "grad_checkpointing": "set_grad_checkpointing",
}


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto``: bf16 where the hardware runs it fast (AVX512-BF16 / AMX CPUs, Ampere+ GPUs), else none."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and torch.compile wrappers."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def as_model_input(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Clips ``(B, C, T, H, W)`` as the model takes them: image models (AST) get ``(B, C, H, W)``
    from one-frame clips (ImageNet images are read as one-frame videos)."""
    if getattr(unwrap(model), "video", True):
        return clips
    if clips.shape[2] != 1:
        raise ConfigError(f"an image model takes one frame per sample; set data.num_frames=1 (got {clips.shape[2]})")
    return clips[:, :, 0]


def apply_training_options(model: nn.Module, name: str, **options: bool) -> list[str]:
    """Turn on each requested option of :data:`TRAINING_CAPABILITIES` (``memory_lean=True``, ...) that
    ``model`` supports; the options it does not support are skipped, one logged line for all of them.
    Returns the skipped options' names."""
    skipped = []
    for option, wanted in options.items():
        if option not in TRAINING_CAPABILITIES:
            raise ValueError(f"unknown training option {option!r}; known: {', '.join(TRAINING_CAPABILITIES)}")
        method = getattr(model, TRAINING_CAPABILITIES[option], None)
        if not wanted:
            continue
        if method is None:
            skipped.append(option)
        else:
            method(True)
    if skipped:
        listed = ", ".join(f"train.{option}" for option in skipped)
        _logger.info("%s trains without %s: the model does not support it", name, listed)
    return skipped
