"""vast's side of timm's ``build_model_with_cfg``: video input sizes in ``pretrained_cfg``, the keys of
it that timm does not know, and an unknown option named with close matches instead of a ``TypeError``."""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import fields
from typing import Any

from timm.models import PretrainedCfg, build_model_with_cfg
from torch import nn

from vast.errors import ConfigError

_TIMM_CFG_FIELDS = frozenset(f.name for f in fields(PretrainedCfg))


def build_model(
    model_cls: type[nn.Module],
    variant: str,
    pretrained: bool,
    default_cfg: dict[str, Any],
    *,
    video: bool,
    num_frames: int,
    **kwargs: Any,
) -> nn.Module:
    """``build_model_with_cfg(model_cls, variant, ...)`` with ``video`` passed to the model; a video
    model's ``pretrained_cfg["input_size"]`` is ``(C, T, H, W)``, ``T`` defaulting to ``num_frames``."""
    timm_cfg, own_cfg = split_pretrained_cfg(kwargs.pop("pretrained_cfg", None) or default_cfg)
    try:
        model = build_model_with_cfg(model_cls, variant, pretrained, video=video, pretrained_cfg=timm_cfg, **kwargs)
    except TypeError as exc:
        raise unknown_option_error(model_cls, variant, exc) from exc
    if isinstance(model, model_cls):
        cfg = model.pretrained_cfg
        cfg.update(own_cfg)
        if video and len(cfg["input_size"]) == 3:
            # timm's config is image-shaped; the video input adds the frame count.
            channels, height, width = cfg["input_size"]
            frames = cfg.setdefault("num_frames", num_frames)
            cfg["input_size"] = (channels, frames, height, width)
    return model


def split_pretrained_cfg(cfg: Any) -> tuple[Any, dict[str, Any]]:
    """A ``pretrained_cfg`` dict as timm takes it, and the keys set aside for the built model.

    timm turns a dict into its ``PretrainedCfg``, which refuses keys it does not know: vast's own
    (``num_frames``, ``frame_sampler``, ``frame_stride``, ``short_side`` in a packaged model's
    ``config.json``, :mod:`vast.models.folder`) wait aside, and a video ``input_size`` (C, T, H, W)
    goes to timm as (C, H, W); both are put back on ``model.pretrained_cfg``.
    """
    if not isinstance(cfg, dict):
        return cfg, {}
    timm_cfg = {k: v for k, v in cfg.items() if k in _TIMM_CFG_FIELDS}
    own = {k: v for k, v in cfg.items() if k not in _TIMM_CFG_FIELDS}
    size = timm_cfg.get("input_size")
    if size is not None and len(size) == 4:
        own["input_size"] = tuple(size)
        timm_cfg["input_size"] = (size[0], *size[2:])
    return timm_cfg, own


def unknown_option_error(model_cls: type[nn.Module], variant: str, exc: TypeError) -> Exception:
    """A :class:`ConfigError` naming the option of ``exc`` that ``model_cls`` does not take, or ``exc``."""
    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if not match:
        return exc
    options = [p for p in inspect.signature(model_cls).parameters if p != "video"]
    close = difflib.get_close_matches(match.group(1), options, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"options: {', '.join(options)}"
    return ConfigError(f"{variant} has no option {match.group(1)!r}; {hint}")
