"""Reading model weights from safetensors files and (weights-only) torch checkpoints."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from vast.errors import CheckpointError
from vast.models.affine_shift import AffineShiftTransformer, checkpoint_filter_fn

_logger = logging.getLogger(__name__)

# Where training checkpoints (ours, timm's, DeiT's, ...) keep the model's state dict.
_STATE_DICT_KEYS = ("model", "state_dict", "model_state", "module")


@dataclass
class LoadReport:
    """What a weight load did: keys the model has but the file lacked, and keys it could not use."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing (left as initialised): {', '.join(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected (ignored): {', '.join(self.unexpected)}")
        return "; ".join(parts) or "all keys matched"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict stored in ``path`` (``.safetensors`` or a torch checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; check the path")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any read failure becomes one clear line
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from exc
    if isinstance(obj, dict):
        for key in _STATE_DICT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} holds no model state dict (a dict of tensors); is it a checkpoint?")
    return obj


def load_weights(model: nn.Module, path: str | Path) -> LoadReport:
    """Load ``path`` into ``model`` after the model family's ``checkpoint_filter_fn``.

    Shapes that still differ after the filter are an error; keys on only one side are reported
    (a warning) and left as they are.
    """
    state_dict = read_state_dict(path)
    if isinstance(model, AffineShiftTransformer):
        state_dict = checkpoint_filter_fn(state_dict, model)
    target = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} vs model {tuple(target[k].shape)}"
        for k, v in state_dict.items()
        if k in target and v.shape != target[k].shape
    ]
    if wrong:
        raise CheckpointError(
            f"{path} does not fit this model: {'; '.join(wrong[:3])}; wrong model name or options?"
        )
    result = model.load_state_dict(state_dict, strict=False)
    report = LoadReport(list(result.missing_keys), list(result.unexpected_keys))
    if report.missing or report.unexpected:
        _logger.warning("loaded %s: %s", path, report)
    else:
        _logger.info("loaded %s: all keys matched", path)
    return report
