"""``create_model``: a registered model by name, or a model folder with its weights (timm's ``_factory``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from vast.errors import CheckpointError, ConfigError
from vast.models.folder import load_package, model_folder
from vast.models.registry import get_entrypoint
from vast.models.weights import load_weights


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
            ``model_args`` and weights (:func:`vast.models.folder.load_package`).
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
        load_weights(model, checkpoint_path)
    return model
