"""Reading a model folder: ``config.json`` in timm's hub form and ``model.safetensors``.

A folder that ``vast export CHECKPOINT --format dir OUT`` wrote (:mod:`vast.deploy.package` writes it,
with its model card) loads with ``vast.create_model(folder)`` (:func:`load_package`): ``config.json``
names the ``architecture``, its ``num_classes``, ``label_names`` and ``model_args`` (with the
architecture they rebuild the exact model), and ``pretrained_cfg``, the evaluation preprocessing, which
:meth:`PackageConfig.data_settings` turns into run-configuration ``data`` keys (``vast eval``,
``vast predict``). An image model (``ast_*``) also loads with
``timm.create_model("local-dir:" + folder, pretrained=True)`` once ``import vast`` has registered it with timm.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from timm.models import PretrainedCfg
from torch import nn

from vast.errors import CheckpointError, UnknownModelError
from vast.models.registry import get_entrypoint, is_registered
from vast.models.saved_options import saved_options
from vast.models.weights import load_weights, read_state_dict

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
LOCAL_DIR = "local-dir:"


def model_folder(name: str | Path) -> Path | None:
    """The model folder ``name`` stands for, or None for a model name: a ``Path``, ``"local-dir:PATH"``,
    or a string that is not a registered name and looks like a path (a separator, or an existing folder)."""
    if isinstance(name, Path):
        return name
    if name.startswith(LOCAL_DIR):
        return Path(name[len(LOCAL_DIR) :])
    if is_registered(name):
        return None
    if "/" in name or os.sep in name or Path(name).is_dir():
        return Path(name)
    return None


@dataclass(frozen=True)
class PackageConfig:
    """What a package's ``config.json`` says."""

    folder: Path
    architecture: str
    num_classes: int
    label_names: list[str]
    model_args: dict[str, Any]
    pretrained_cfg: dict[str, Any]
    quantization: dict[str, Any] | None = None  # an int8 program beside the fp32 weights (vast.deploy.quantize)

    def data_settings(self) -> dict[str, Any]:
        """The evaluation preprocessing as run-configuration ``data`` keys (timm's defaults for the
        keys ``pretrained_cfg`` leaves out; sampler and stride only where it states them)."""
        cfg = {**asdict(PretrainedCfg()), **self.pretrained_cfg}
        size = cfg["input_size"]
        crop = int(size[-1])
        short = cfg.get("short_side")
        settings = {
            "num_frames": int(cfg.get("num_frames", size[1] if len(size) == 4 else 1)),
            "crop_size": crop,
            "short_side": int(short) if short is not None else round(crop / cfg["crop_pct"]),
            "mean": list(cfg["mean"]),
            "std": list(cfg["std"]),
        }
        if "frame_sampler" in cfg:
            settings["sampler"] = cfg["frame_sampler"]
        if "frame_stride" in cfg:
            settings["stride"] = int(cfg["frame_stride"])
        if "frame_fps" in cfg:
            settings["fps"] = float(cfg["frame_fps"])
        return settings


def is_package(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding a ``config.json`` (a packaged model)."""
    return Path(path).is_dir() and (Path(path) / CONFIG_FILE).is_file()


def read_package(folder: str | Path) -> PackageConfig:
    """The ``config.json`` of the model folder ``folder``; a missing folder or file, unreadable JSON or an
    architecture vast does not know is one-line :class:`~vast.errors.VastError`."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    make = f"write one with `vast export CHECKPOINT --format dir {folder}`"
    if not folder.is_dir():
        raise CheckpointError(f"model folder not found: {folder}; {make}")
    if not path.is_file():
        raise CheckpointError(f"{path} not found: {folder} is not a model folder; {make}")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {str(exc).splitlines()[0]}; export the folder again") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("architecture"), str):
        raise CheckpointError(f"{path} names no architecture; {make}")
    try:
        get_entrypoint(raw["architecture"])
    except UnknownModelError as exc:
        raise UnknownModelError(f"{path}: {exc}; was the folder written by another library?") from None
    cfg = dict(raw.get("pretrained_cfg") or {})
    num_classes = int(raw.get("num_classes", cfg.get("num_classes", 0)))
    labels = raw.get("label_names") or cfg.get("label_names") or [str(i) for i in range(num_classes)]
    model_args = saved_options(raw["architecture"], dict(raw.get("model_args") or {}))
    quantization = raw.get("quantization")
    return PackageConfig(folder, raw["architecture"], num_classes, list(labels), model_args, cfg, quantization)


def load_package(folder: str | Path, *, num_classes: int | None = None, **overrides: Any) -> nn.Module:
    """The model of the folder with its weights (in train mode, as ``create_model`` returns models).

    ``num_classes`` other than the folder's gives a freshly initialised classifier (to fine-tune);
    ``overrides`` change model options (e.g. ``drop_path_rate``). ``model.pretrained_cfg`` becomes the
    folder's, with ``source="local-dir"`` as timm sets it.
    """
    package = read_package(folder)
    weights = package.folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(
            f"{weights} not found: the model folder has no weights; export it again with "
            f"`vast export CHECKPOINT --format dir {package.folder}`"
        )
    classes = package.num_classes if num_classes is None else num_classes
    build = get_entrypoint(package.architecture)  # as create_model builds a registered name
    model = build(pretrained=False, num_classes=classes, **{**package.model_args, **overrides})
    if classes == package.num_classes:
        _load_exactly(model, weights, package)
    else:
        load_weights(model, weights)  # the classifier of another class count stays fresh
    if isinstance(getattr(model, "pretrained_cfg", None), dict):
        labels = {"label_names": package.label_names} if classes == package.num_classes else {}
        model.pretrained_cfg.update(
            package.pretrained_cfg, num_classes=classes, file=str(package.folder), source="local-dir", **labels
        )
    return model


def _load_exactly(model: nn.Module, weights: Path, package: PackageConfig) -> None:
    state = read_state_dict(weights)
    target = model.state_dict()
    missing, unexpected = sorted(target.keys() - state.keys()), sorted(state.keys() - target.keys())
    reshaped = sorted(k for k in state.keys() & target.keys() if state[k].shape != target[k].shape)
    if missing or unexpected or reshaped:
        first = (missing or unexpected or reshaped)[0]
        raise CheckpointError(
            f"{weights} does not fit {package.architecture} with the model_args of its {CONFIG_FILE}: "
            f"{len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped keys "
            f"(first: {first}); export the folder again"
        )
    model.load_state_dict(state)
