"""How a study peer becomes a vast model: options that are named keywords only (an unknown one is named
with close matches) and rebuild from their defaults, and the checks of a clip and of a depth list that
every peer shares. The peers themselves: :mod:`vast.models.video_swin`, :mod:`vast.models.mvit` and
:mod:`vast.models.frame_resnet`, listed in :mod:`vast.models.peers`."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from vast.errors import CheckpointError, ConfigError, InputShapeError
from vast.models.registry import get_entrypoint, register_model


def register_peer(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``builder`` (keyword-only options) as a vast model entry point."""
    options = list(inspect.signature(builder).parameters)

    @functools.wraps(builder)
    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise CheckpointError(f"no pretrained weights for {builder.__name__}; peers train from scratch")
        for key in kwargs:
            if key not in options:
                close = difflib.get_close_matches(key, options, n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(close)}?" if close else f"options: {', '.join(options)}"
                raise ConfigError(f"{builder.__name__} has no option {key!r}; {hint}")
        return builder(**kwargs)

    return register_model(entry)


def peer_options(name: str) -> dict[str, Any]:
    """Every option of the peer ``name`` with its default."""
    params = inspect.signature(get_entrypoint(name)).parameters
    return {key: p.default for key, p in params.items() if key != "pretrained"}


def int_tuple(value: int | Sequence[int], name: str, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of ints (YAML gives lists); a single int is repeated ``length`` times."""
    if isinstance(value, int) and length is not None:
        return (value,) * length
    if isinstance(value, int) or not all(isinstance(v, int) for v in value):
        raise ConfigError(f"{name} expects a list of integers; got {value!r}")
    values = tuple(value)
    if length is not None and len(values) != length:
        raise ConfigError(f"{name} expects {length} integers; got {value!r}")
    return values


def check_blocks(name: str, depths: tuple[int, ...]) -> None:
    if not depths or min(depths) < 1 or sum(depths) < 2:  # torchvision's drop-path ramp divides by blocks - 1
        raise ConfigError(f"{name}: depths must be positive with at least 2 blocks in all; got {depths}")


DEFAULT_CLIP = (8, 32, 32)  # (T, H, W): the peers' default input (``pretrained_cfg``), the study's clip


def peer_cfg(num_classes: int, clip: Sequence[int]) -> dict[str, Any]:
    """What vast's tools read of a model's config (``vast models``: the default input)."""
    return {"input_size": (3, *clip), "num_classes": num_classes}


def check_clip(x: torch.Tensor, name: str, clip: tuple[int, ...] | None = None) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is ``(B, 3, T, H, W)`` (of ``clip`` = (T, H, W) if given)."""
    shape = tuple(x.shape)
    if len(shape) == 5 and shape[1] == 3 and (clip is None or shape[2:] == clip):
        return
    expected = f"(B, 3, {', '.join(map(str, clip))})" if clip else "(B, 3, T, H, W)"
    built = " (it is built for one clip size: options num_frames, image_size)" if clip else ""
    raise InputShapeError(f"{name} takes clips {expected}{built}; got {shape}")
