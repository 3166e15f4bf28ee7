"""Model registry: ``register_model``, ``list_models`` and ``create_model``.

Entry points are plain functions named after the model (timm's convention). Importing
:mod:`vast.models` fills the registry and registers the image models (``ast_*``) with timm as well.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from vast.errors import CheckpointError, UnknownModelError

_logger = logging.getLogger(__name__)

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name as a model entry point."""
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the shell-style ``pattern``."""
    return sorted(name for name in _ENTRYPOINTS if fnmatch.fnmatch(name, pattern))


def get_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entry point of ``name``; an unknown name raises an error that lists close names."""
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, list(_ENTRYPOINTS), n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(list_models())}"
        raise UnknownModelError(f"unknown model {name!r}; {hint} (see `vast models`)")
    return _ENTRYPOINTS[name]


def create_model(
    name: str,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
    checkpoint_path: str | Path | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the model ``name``.

    Args:
        name: a registered name, e.g. ``"vast_tiny"`` (see :func:`list_models`).
        pretrained: published weights; none are published yet, so this asks for ``checkpoint_path``.
        num_classes: classifier size (default: the model's config, 400 for VAST, 1000 for AST).
        checkpoint_path: a ``.safetensors`` file or a torch checkpoint (read with ``weights_only=True``)
            to load; AST weights load into VAST (patch-embedding inflation), and a classifier of another
            class count is left freshly initialised.
        **overrides: constructor options, e.g. ``norm="layernorm"``, ``temporal_shift=False``,
            ``t_patch=2``, ``drop_path_rate=0.2``.
    """
    entrypoint = get_entrypoint(name)
    if pretrained:
        raise CheckpointError(
            f"no pretrained weights are published for {name} yet; train one (`vast train`) and pass "
            f"checkpoint_path=... (or --checkpoint) instead"
        )
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    model = entrypoint(pretrained=False, **overrides)
    if checkpoint_path is not None:
        from vast.models.weights import load_weights

        load_weights(model, checkpoint_path)
    return model
