"""Run configuration: typed dataclasses, read from YAML recipes, overridden with ``--set key=value``.

A recipe is a YAML file with the sections ``model``, ``data``, ``optim`` and ``train``; every key is a
field below. ``--set optim.lr=0.001`` overrides one value, type-checked against the field; an unknown
key is an error that names the close keys. The resolved configuration is saved with every run
(``config.yaml``) and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vast.errors import ConfigError

_logger = logging.getLogger(__name__)


@dataclass
class ModelConfig:
    name: str = "vast_nano"
    num_classes: int | None = None  # None: the number of classes in the training annotations
    options: dict[str, Any] = field(default_factory=dict)  # constructor options, e.g. norm, t_patch
    init_checkpoint: str | None = None  # weights to start from (e.g. AST ImageNet weights for VAST)


@dataclass
class DataConfig:
    root: str = ""  # videos are looked up relative to this folder ("" = next to the annotations)
    train: str = ""  # training annotations (list, CSV, folder, Kinetics CSV, SSv2 JSON, UCF101 / HMDB51 splits)
    val: str = ""  # validation annotations (ucf101 / hmdb51: the split's test subset)
    format: str = "auto"
    split: int = 0  # ucf101 / hmdb51: the official split, 1, 2 or 3 (0: unset; a UCF101 list names its own)
    num_frames: int = 8
    sampler: str = "tsn"  # tsn | dense: even in presentation time; tsn_frames | dense_frames: in frame index
    stride: int = 4  # dense sampling: frames between sampled frames
    fps: float = 0.0  # dense (time) sampling: frame rate stride counts frames at (0: each video's own)
    short_side: int = 256  # evaluation: resize the short side to this before cropping (0: crop / 0.875)
    crop_size: int = 224
    train_short_side: tuple[int, int] | None = None  # training scale jitter: short side in [a, b]
    min_scale: float = 0.25  # random-resized crop: smallest area fraction kept
    randaugment_ops: int = 0  # RandAugment, the same ops on every frame of a clip (0: off)
    randaugment_magnitude: int = 9
    random_erasing: float = 0.0
    flip: bool = False  # off by default: direction-sensitive data sets (SSv2, Moving-Digits)
    flip_pairs: list[list[int]] | None = None  # label pairs a horizontal flip swaps (label-aware flip)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    num_workers: int = 2
    cache_mb: int = 0  # keep decoded videos in memory, up to this many MiB (vast.data.cache; num_workers 0)
    on_error: str = "skip"  # skip | raise, for broken videos during training
    test_clips: int = 1  # the final model tested on data.val with clips x crops views (1 x 1: none)
    test_crops: int = 1


@dataclass
class OptimConfig:
    name: str = "adamw"  # adamw | sgd (timm's optimiser factory)
    lr: float = 1e-3  # for batch_size x accum_steps x world_size = base_batch_size
    base_batch_size: int = 0  # >0: scale lr linearly with the effective batch size
    weight_decay: float = 0.05
    momentum: float = 0.9
    warmup_epochs: float = 1.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    clip_grad: float | None = None
    accum_steps: int = 1


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 16
    eval_batch_size: int = 0  # 0: same as batch_size
    amp: str = "none"  # none | bf16 | fp16 (CUDA only, with a gradient scaler) | auto (bf16 where fast)
    ema: bool = False
    ema_decay: float = 0.999
    mixup: float = 0.0
    cutmix: float = 0.0
    label_smoothing: float = 0.0
    grad_checkpointing: bool = False
    memory_lean: bool = False  # recompute norm and GELU outputs in the backward pass (model.set_memory_lean)
    compile: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    output_dir: str = "runs/vast"
    eval_every: int = 1  # epochs between single-clip validations (0: only at the end)
    log_every: int = 10  # steps between CSV / TensorBoard rows
    max_steps: int = 0  # >0: stop after this many optimiser steps (tests, smoke runs)
    auto_resume: bool = True  # continue <output_dir>/last.pt when it holds a run of this configuration
    checkpoint_every: int = 0  # >0: also write last.pt every this many optimiser steps, mid-epoch
    checkpoint_minutes: float = 0.0  # >0: also write last.pt when this many minutes have passed since the last
    keep_last: int = 0  # older checkpoints kept beside last.pt, as checkpoint-e<epoch>-s<step>.pt


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)


CHOICES = {
    "data.sampler": ("tsn", "dense", "tsn_frames", "dense_frames"),  # vast.data.sampling.SAMPLERS
    "data.on_error": ("skip", "raise"),
    "optim.name": ("adamw", "sgd"),
    "train.amp": ("none", "bf16", "fp16", "auto"),
}


def recipe_names() -> list[str]:
    """Names of the recipes shipped with the package (``vast/recipes/*.yaml``)."""
    return sorted(p.name[:-5] for p in resources.files("vast.recipes").iterdir() if p.name.endswith(".yaml"))


def resolve_recipe(recipe: str | Path) -> Path:
    """A recipe path, or the name of a shipped recipe (``demo``, ``k400_vast_tiny`` ...)."""
    path = Path(recipe)
    if path.is_file():
        return path
    shipped = resources.files("vast.recipes") / f"{Path(str(recipe)).stem}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    names = recipe_names()
    close = difflib.get_close_matches(str(recipe), names, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"shipped recipes: {', '.join(names)}"
    raise ConfigError(f"recipe not found: {recipe}; give a YAML file or a shipped recipe name ({hint})")


def load_config(
    recipe: str | Path | None = None, overrides: Iterable[str] = (), base: dict[str, Any] | None = None
) -> RunConfig:
    """The configuration of ``recipe`` (a path or shipped name) or of ``base`` (a saved configuration,
    e.g. a checkpoint's), else the defaults, with ``overrides`` (``key=value`` strings) applied."""
    config = config_from_dict(base) if base is not None else RunConfig()
    if recipe is not None:
        path = resolve_recipe(recipe)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping with sections model, data, optim, train")
        for key, value in _flatten(data):
            set_value(config, key, value, source=str(path))
    recipe_model, recipe_options = config.model.name, dict(config.model.options)
    overrides = list(overrides)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, e.g. --set optim.lr=0.001; got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        set_value(config, key.strip(), value, source="--set")
    if config.model.name != recipe_model:
        given = {item.partition("=")[0].strip().removeprefix("model.options.") for item in overrides}
        kept_by_recipe = {key: value for key, value in recipe_options.items() if key not in given}
        _drop_options_of_another_model(config, recipe_model, kept_by_recipe)
    validate(config)
    return config


def _drop_options_of_another_model(config: RunConfig, recipe_model: str, recipe_options: dict[str, Any]) -> None:
    """``--set model.name=tsm`` on a recipe of vast_nano: the recipe's model options that tsm does not take
    (``norm``) are dropped, one logged line; those it takes stay. ``recipe_options``: the recipe's
    options that --set did not give again."""
    from vast.errors import UnknownModelError
    from vast.models.registry import model_options

    try:
        accepted = model_options(config.model.name)
    except UnknownModelError:
        return  # create_model names the unknown model, with close names
    if accepted is None:
        return
    dropped = [key for key in recipe_options if key not in accepted and key in config.model.options]
    for key in dropped:
        del config.model.options[key]
    if dropped:
        _logger.info("model.options %s of the recipe's %s do not apply to %s: left out", ", ".join(dropped),
                     recipe_model, config.model.name)  # fmt: skip


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Rebuild a configuration saved with :meth:`RunConfig.to_dict` (e.g. from a checkpoint)."""
    config = RunConfig()
    for key, value in _flatten(data):
        set_value(config, key, value, source="checkpoint")
    return config


def all_keys() -> list[str]:
    config = RunConfig()
    return [
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(config)
        for f in dataclasses.fields(getattr(config, section.name))
    ]


def set_value(config: RunConfig, key: str, value: Any, source: str = "--set") -> None:
    """Set the dotted ``key`` (``optim.lr``, ``model.options.norm``) to ``value``, type-checked."""
    parts = key.split(".")
    section_name, field_name = parts[0], ".".join(parts[1:2])
    section = getattr(config, section_name, None) if len(parts) >= 2 else None
    fields = {f.name: f for f in dataclasses.fields(section)} if dataclasses.is_dataclass(section) else {}
    if field_name not in fields or (len(parts) > 2 and not _is_dict_field(fields[field_name])):
        close = difflib.get_close_matches(key, all_keys(), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else "see `vast train --list-keys`"
        raise ConfigError(f"unknown config key {key!r} in {source}; {hint}")
    spec = fields[field_name]
    if len(parts) > 2:  # a key inside a free-form dict, e.g. model.options.norm
        getattr(section, field_name)[".".join(parts[2:])] = value
        return
    setattr(section, field_name, _coerce(key, value, _field_type(section, spec), source))


def validate(config: RunConfig) -> None:
    for key, choices in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    positive = ["data.num_frames", "train.epochs", "train.batch_size", "optim.accum_steps", "data.crop_size"]
    for key in positive:
        section, name = key.split(".")
        if getattr(getattr(config, section), name) <= 0:
            raise ConfigError(f"{key} must be positive; got {getattr(getattr(config, section), name)}")
    if config.optim.lr <= 0:
        raise ConfigError(f"optim.lr must be positive; got {config.optim.lr}")
    if config.data.split not in (0, 1, 2, 3):
        raise ConfigError(f"data.split must be 1, 2 or 3 (the official splits), or 0 (unset); got {config.data.split}")
    if not config.data.fps >= 0:
        raise ConfigError(f"data.fps must be 0 (each video's own frame rate) or positive; got {config.data.fps}")
    if config.data.fps and config.data.sampler != "dense":
        raise ConfigError(
            f"data.fps sets the frame rate of data.sampler=dense; {config.data.sampler} has none: set data.fps=0"
        )
    if config.data.cache_mb < 0:
        raise ConfigError(f"data.cache_mb must be 0 (off) or positive; got {config.data.cache_mb}")
    if config.data.cache_mb and config.data.num_workers:
        raise ConfigError(
            "data.cache_mb keeps decoded videos in the loading process, so it needs data.num_workers=0 "
            f"(got {config.data.num_workers}): set one of them to 0"
        )
    if config.data.test_clips < 1 or config.data.test_crops not in (1, 3):
        raise ConfigError(
            f"data.test_clips must be >= 1 and data.test_crops 1 or 3 (as vast eval --views); got "
            f"{config.data.test_clips} and {config.data.test_crops}"
        )
    for key in ("train.checkpoint_every", "train.checkpoint_minutes", "train.keep_last", "train.max_steps"):
        section, name = key.split(".")
        if getattr(getattr(config, section), name) < 0:
            raise ConfigError(f"{key} must be 0 (off) or positive; got {getattr(getattr(config, section), name)}")


# Keys that say how a run is carried out, not what it computes: a resumed run takes them from the
# command that resumes it, and they may differ from the checkpoint's without making it another run.
# (train.epochs is not one: it shapes the learning-rate schedule. Only an explicit --resume changes it.)
RUN_LENGTH_AND_PLACE = (
    "train.max_steps",
    "train.output_dir",
    "train.device",
    "train.threads",
    "train.eval_every",
    "train.eval_batch_size",
    "train.log_every",
    "train.auto_resume",
    "train.checkpoint_every",
    "train.checkpoint_minutes",
    "train.keep_last",
    "data.num_workers",
    "data.cache_mb",
    "data.test_clips",  # the test of the final model, after training
    "data.test_crops",
)


def config_differences(saved: RunConfig, wanted: RunConfig, ignore: Iterable[str] = RUN_LENGTH_AND_PLACE) -> list[str]:
    """The dotted keys whose values differ between two configurations, except those in ``ignore``."""
    skip = set(ignore)
    a, b = _leaves(saved), _leaves(wanted)
    return sorted(key for key in a.keys() | b.keys() if key not in skip and a.get(key) != b.get(key))


def _leaves(config: RunConfig) -> dict[str, Any]:
    """Every value by dotted key, a model option as ``model.options.<name>``."""
    leaves = {}
    for key, value in _flatten(_plain(config.to_dict())):
        if isinstance(value, dict):
            leaves.update({f"{key}.{name}": item for name, item in value.items()})
        else:
            leaves[key] = value
    return leaves


def save_config(config: RunConfig, path: str | Path) -> None:
    Path(path).write_text(config.to_yaml())


# ---- helpers -------------------------------------------------------------------------------------


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        # Recurse into sections, but keep free-form dict fields (model.options) whole.
        if isinstance(value, dict) and dotted.count(".") == 0:
            yield from _flatten(value, f"{dotted}.")
        else:
            yield dotted, value


def _is_dict_field(spec: dataclasses.Field) -> bool:
    return "dict" in str(spec.type)


def _field_type(section: Any, spec: dataclasses.Field) -> Any:
    return typing.get_type_hints(type(section))[spec.name]


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    """``value`` as ``annotation`` (int, float, bool, str, optional, tuple, dict), else ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, value, inner[0], source)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key} expects {len(args)} numbers like [0.5, 0.5, 0.5] ({source}); got {value!r}")
        return tuple(_coerce(key, v, a, source) for v, a in zip(value, args))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} expects a list ({source}); got {value!r}")
        return [_coerce(key, v, args[0], source) if args else v for v in value]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key} expects a mapping ({source}); got {value!r}")
        return dict(value)
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    if annotation is str and isinstance(value, bool):  # YAML reads off/on/yes/no as booleans
        raise ConfigError(f"{key} expects text ({source}); got {value!r}, YAML's reading of off/on/yes/no: quote it")
    raise ConfigError(f"{key} expects {annotation.__name__} ({source}); got {value!r}")


def _plain(value: Any) -> Any:
    """Tuples to lists so that YAML stays plain."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
