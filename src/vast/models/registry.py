"""Model registry: ``register_model``, ``list_models`` and ``create_model``.

Entry points are plain functions named after the model (timm's convention). Importing
:mod:`vast.models` fills the registry and registers the image models (``ast_*``) with timm as well.
``create_model`` also takes a model folder (``vast export --format dir``), read by
:mod:`vast.deploy.package`.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from vast.errors import CheckpointError, ConfigError, UnknownModelError

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
    name: str | Path,
    *,
    pretrained: bool = False,
    num_classes: int | None = None,
    checkpoint_path: str | Path | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the model ``name``.

    Args:
        name: a registered name, e.g. ``"vast_tiny"`` (see :func:`list_models`), or a model folder
            written by ``vast export CHECKPOINT --format dir OUT`` (a ``Path``, a path that is not a
            registered name, or ``"local-dir:OUT"`` as timm writes it): its architecture with its
            ``model_args`` and weights (:func:`vast.deploy.package.load_package`).
        pretrained: published weights; none are published yet, so this asks for ``checkpoint_path``
            (a model folder always brings its own weights).
        num_classes: classifier size (default: the model's config, 400 for VAST, 1000 for AST; a
            folder's own). A folder's model with another class count gets a fresh classifier.
        checkpoint_path: a ``.safetensors`` file or a torch checkpoint (read with ``weights_only=True``)
            to load; AST weights load into VAST (patch-embedding inflation), and a classifier of another
            class count is left freshly initialised.
        **overrides: constructor options, e.g. ``norm="layernorm"``, ``temporal_shift=False``,
            ``t_patch=2``, ``drop_path_rate=0.2``.
    """
    folder = model_folder(name)
    if folder is not None:
        if checkpoint_path is not None:
            raise ConfigError(f"{folder} is a model folder with its own weights; drop checkpoint_path")
        from vast.deploy.package import load_package

        return load_package(folder, num_classes=num_classes, **overrides)
    entrypoint = get_entrypoint(str(name))
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


LOCAL_DIR = "local-dir:"


def model_folder(name: str | Path) -> Path | None:
    """The model folder ``name`` stands for, or None for a model name: a ``Path``, ``"local-dir:PATH"``,
    or a string that is not a registered name and looks like a path (a separator, or an existing folder)."""
    if isinstance(name, Path):
        return name
    if name.startswith(LOCAL_DIR):
        return Path(name[len(LOCAL_DIR) :])
    if name in _ENTRYPOINTS:
        return None
    if "/" in name or os.sep in name or Path(name).is_dir():
        return Path(name)
    return None
