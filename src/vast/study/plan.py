"""Study plans: which models, options and seeds are trained, on which data, with which recipe.

A plan is a YAML file (shipped ones in ``vast/study/plans/``)::

    name: paper-claims
    recipe: study                 # the one training recipe of every run
    data: {generator: study, num_train: 3200, num_val: 800}
    seeds: [0, 1, 2]
    overrides: []                 # --set values applied to every run
    quick:                        # --quick: a small, fast version of the same plan
      seeds: [0]
      data: {num_train: 96, num_val: 48}
      overrides: [train.epochs=1]
    groups:
      - name: compute 1x
        claim: attention          # which verdict of the report the group feeds
        runs:
          - {label: VAST, model: vast_nano}
          - {label: Video Swin, model: video_swin, match_gmacs: {model: vast_nano, factor: 1}}

``data`` either names a generator (``study`` or ``moving-digits``, with its settings), whose set the
study writes into ``<out>/data`` once, or existing annotations, a study on your own data::

    recipe: my-recipe.yaml        # short_side, crop_size, num_frames ... for your videos
    data: {train: lists/train.csv, val: lists/val.csv, root: /data/videos}   # root, format, split optional

``train`` and ``val`` are any annotations ``vast train`` reads (``data.train`` / ``data.val``: a list
file, a CSV, a folder per class, Kinetics, SSv2, UCF101, HMDB51); ``root``, ``format`` and ``split`` are
``data.root``, ``data.format`` and ``data.split`` (left out: the defaults, never the recipe's). A relative
path is resolved against the plan file's folder (against the current folder for a shipped plan) and must
exist. The number of classes comes from the training annotations, as in ``vast train``. A plan gives a
generator or annotations, not both, and ``train`` with ``val``; ``--quick`` keeps
annotations as they are (its ``data`` may name other, smaller ``train`` and ``val`` annotations, but not
``num_train`` / ``num_val``, which size only a generated set), its seeds and overrides apply as usual.

``match_gmacs`` sizes a peer so that its multiply-adds at the study input lie within 15 % of the
named model's times ``factor`` (:func:`vast.models.peer_sizing.options_for_gmacs`); its options are then
fixed in the run's record, so every record rebuilds its model with ``vast.create_model``.

A run entry's ``overrides`` are ``--set`` values for that run only, applied after the plan's (and
``--quick``'s and the command line's): ``{label: TSM, model: tsm, overrides: [optim.lr=0.001]}``. They
are part of the configuration (two entries that differ only by them are two configurations) and of the
run's record. Every key must be one the trainer's configuration accepts, checked when the plan loads;
``model.*``, ``train.seed``, ``train.output_dir``, ``data.train`` and ``data.val`` are the study's own
(an entry's ``model`` and ``options``, the plan's ``seeds`` and ``data``) and cannot be overridden.

A group's ``epochs`` list expands every entry of the group into one run per epoch count, each with the
override ``train.epochs=N`` after the entry's own and the same label. That is how a ``claim:
convergence`` group measures top-1 against optimiser steps (each point a whole training with its own
learning-rate schedule), one line per label in ``convergence.png`` and one table row per label::

    groups:
      - name: convergence 1x
        claim: convergence
        epochs: [1, 3, 6, 12]     # 200, 600, 1200, 2400 optimiser steps on 3,200 videos at batch 16
        runs:
          - {label: VAST, model: vast_nano}
          - {label: TSM, model: tsm, match_gmacs: {model: vast_nano, factor: 1}}

The runs go epoch count by epoch count (every entry at 1 epoch, then every entry at 3 ...), seeds
innermost, so a stopped study has the short schedules of every model. ``quick.epochs`` replaces every
group's ``epochs`` list in the ``--quick`` form.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vast.data.annotations import FORMATS
from vast.engine.config import load_config
from vast.errors import ConfigError
from vast.models.saved_options import pin_options

GMACS_TOLERANCE = 0.15
CLAIMS = ("attention", "affine", "ablation", "convergence")
GROUP_KEYS = ("name", "claim", "epochs", "runs")
ENTRY_KEYS = ("label", "model", "options", "match_gmacs", "overrides")
# Set by the study itself for every run (an entry's model and options, the plan's seeds and data).
STUDY_OWN_KEYS = ("model.", "train.seed", "train.output_dir", "data.train", "data.val")
ANNOTATION_KEYS = ("train", "val", "root", "format", "split")  # data: of a plan on existing annotations
ANNOTATION_PATHS = ("train", "val", "root")


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study: a model configuration and a seed."""

    group: str
    label: str
    model: str
    options: dict[str, Any]
    seed: int
    claim: str = "ablation"
    match_gmacs: dict[str, Any] | None = None
    overrides: tuple[str, ...] = ()  # --set values of this run alone, after the plan's
    epochs: int | None = None  # the point of its group's ``epochs`` schedule (also in ``overrides``)

    @property
    def config_key(self) -> str:
        """Names the configuration (model, options, compute target, the run's own overrides), the same
        for every seed."""
        # The options are pinned (vast.models.saved_options): a VAST run that leaves the temporal reach
        # options out gets a key of today's default, not the key under which a study recorded before
        # the default changed holds the old block. Keys that name both reach options, and every peer's,
        # are what they were, so those records are still reused. A peer's match_gmacs stays as the plan
        # gives it: it names a budget, and a record sized to the old vast_nano (0.9 % fewer GMACs) keeps
        # its own options and GMACs, which the report compares with its group's first row.
        what: list[Any] = [self.model, pin_options(self.model, self.options), self.match_gmacs]
        if self.overrides:  # left out when empty: the key of a study recorded before runs had them
            what.append(list(self.overrides))
        digest = hashlib.sha1(json.dumps(what, sort_keys=True).encode()).hexdigest()
        return f"{self.model}-{digest[:8]}"

    @property
    def key(self) -> str:
        """Names the run: a finished run with this key in ``study.json`` is not run again."""
        return f"{self.config_key}-s{self.seed}"


@dataclass
class StudyPlan:
    name: str
    recipe: str
    data: dict[str, Any]
    seeds: list[int]
    groups: list[dict[str, Any]]
    overrides: list[str] = field(default_factory=list)

    @property
    def on_annotations(self) -> bool:
        """Whether the plan trains on existing annotations (``data: {train, val}``), not a generated set."""
        return "train" in self.data

    def runs(self) -> list[RunSpec]:
        """Every run of the plan, seeds innermost, so that a stopped study has whole configurations; a
        group's ``epochs`` outside its entries, so that it has every entry's short schedules first."""
        return [
            RunSpec(
                group=group["name"],
                label=entry["label"],
                model=entry["model"],
                options=dict(entry.get("options") or {}),
                seed=seed,
                claim=group.get("claim", "ablation"),
                match_gmacs=entry.get("match_gmacs"),
                overrides=(*(entry.get("overrides") or ()), *_schedule_overrides(epochs)),
                epochs=epochs,
            )
            for group in self.groups
            for epochs in group.get("epochs") or [None]
            for entry in group["runs"]
            for seed in self.seeds
        ]


def _schedule_overrides(epochs: int | None) -> tuple[str, ...]:
    return () if epochs is None else (f"train.epochs={epochs}",)


def plan_names() -> list[str]:
    """The plans shipped with the package."""
    files = resources.files("vast.study.plans").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))


def _plan_path(name: str | Path) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"no study plan file {path}; give a YAML plan or one of {', '.join(plan_names())}")
        return path
    if str(name) not in plan_names():
        raise ConfigError(f"unknown study plan {str(name)!r}; shipped plans: {', '.join(plan_names())}")
    return Path(str(resources.files("vast.study.plans") / f"{name}.yaml"))


def load_plan(name: str | Path, quick: bool = False) -> StudyPlan:
    """The plan ``name`` (a shipped name or a YAML path); ``quick`` applies its ``quick`` section."""
    path = _plan_path(name)
    shipped = Path(name).suffix not in (".yaml", ".yml")  # a name, not a path: relative paths from the current folder
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"name", "recipe", "data", "seeds", "overrides", "quick", "groups"}
    if unknown:
        raise ConfigError(f"{path}: unknown plan keys {', '.join(sorted(unknown))}")
    small = raw.get("quick") or {}
    for where, section in (("data", raw.get("data")), ("quick.data", small.get("data"))):
        if section is not None and not isinstance(section, dict):
            raise ConfigError(f"{path}: {where} must be a mapping, e.g. {{train: PATH, val: PATH}}; got {section!r}")
    data = dict(raw.get("data") or {})
    quick_data = {**data, **(small.get("data") or {})}
    _check_data_keys(data, path, "data")
    _check_data_keys(quick_data, path, "quick.data")  # checked on every load: --quick fails early, not later
    plan = StudyPlan(
        name=raw.get("name", path.stem),
        recipe=raw.get("recipe", "study"),
        data=data,
        seeds=list(raw.get("seeds") or [0]),
        groups=list(raw.get("groups") or []),
        overrides=list(raw.get("overrides") or []),
    )
    unknown = set(small) - {"seeds", "data", "overrides", "epochs"}
    if unknown:
        raise ConfigError(f"{path}: unknown quick keys {', '.join(sorted(unknown))}")
    if "epochs" in small:
        _check_epochs(small["epochs"], path, "quick.epochs")
    if quick:
        plan.seeds = list(small.get("seeds", plan.seeds))
        plan.data = quick_data
        plan.overrides += list(small.get("overrides") or [])
        if "epochs" in small:
            plan.groups = [{**g, "epochs": list(small["epochs"])} if "epochs" in g else g for g in plan.groups]
    if plan.on_annotations:
        base = Path.cwd() if shipped else path.resolve().parent
        home = f"the current folder {base}" if shipped else f"the plan's folder {base}"
        plan.data = _resolve_annotations(plan.data, path, base, home, "quick.data" if quick else "data")
    _check(plan, path)
    _check_overrides(plan, path)
    return plan


def _check_data_keys(data: dict[str, Any], path: Path, where: str) -> None:
    """A generator with its settings, or train and val annotations (with root, format, split): one line
    of ConfigError for a mix, a half or a key of the other kind."""
    given = [key for key in ("train", "val") if key in data]
    if given and "generator" in data:
        raise ConfigError(f"{path}: {where}: give either a generator or train and val annotations, not both")
    if len(given) == 1:
        missing = "val" if given[0] == "train" else "train"
        raise ConfigError(
            f"{path}: {where} has {given[0]} but no {missing}: a study on your own data needs both train and "
            f"val annotations (or give a generator instead)"
        )
    if given:
        extra = sorted(set(data) - set(ANNOTATION_KEYS))
        if extra:
            raise ConfigError(
                f"{path}: {where}: generator settings ({', '.join(extra)}) do not apply to your own annotations; "
                f"a plan on them takes {', '.join(ANNOTATION_KEYS)} (for a small --quick study, point quick.data's "
                f"train and val at smaller annotation files)"
            )
    else:
        stray = [key for key in ANNOTATION_KEYS if key in data]
        if stray:
            raise ConfigError(
                f"{path}: {where}: {', '.join(stray)} {'goes' if len(stray) == 1 else 'go'} with train and val "
                f"annotations, which the plan does not give"
            )


def _resolve_annotations(data: dict[str, Any], path: Path, base: Path, home: str, where: str) -> dict[str, Any]:
    """``data`` with its paths absolute (relative ones taken from ``base``), each checked to exist."""
    resolved = dict(data)
    for key in ANNOTATION_PATHS:
        if key not in data:
            continue
        value = data[key]
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{path}: {where}.{key} must be a path, got {value!r}")
        target = Path(value).expanduser()
        target = target if target.is_absolute() else base / target
        if not target.exists():
            what = "the folder of the videos" if key == "root" else "an annotation file or folder `vast train` reads"
            raise ConfigError(
                f"{path}: {where}.{key} {target} does not exist; give {what}, absolute or relative to {home}"
            )
        resolved[key] = str(target)
    formats = ("auto", *FORMATS)
    if resolved.get("format", "auto") not in formats:
        raise ConfigError(f"{path}: {where}.format must be one of {', '.join(formats)}; got {resolved['format']!r}")
    if resolved.get("split", 0) not in (0, 1, 2, 3) or isinstance(resolved.get("split"), bool):
        raise ConfigError(f"{path}: {where}.split must be 1, 2 or 3 (an official split), or 0; got {resolved['split']}")
    return resolved


def _check(plan: StudyPlan, path: Path) -> None:
    if not plan.groups:
        raise ConfigError(f"{path}: the plan has no groups of runs")
    for group in plan.groups:
        _check_group(group, path)
        for entry in group["runs"]:
            _check_entry(entry, group, path)


def _check_group(group: Any, path: Path) -> None:
    if not isinstance(group, dict) or "name" not in group or not group.get("runs"):
        raise ConfigError(f"{path}: every group needs a name and runs, got {group}")
    if group.get("claim", "ablation") not in CLAIMS:
        raise ConfigError(f"{path}: group {group['name']!r} claim must be one of {', '.join(CLAIMS)}")
    unknown = set(group) - set(GROUP_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: group {group['name']!r} has unknown keys {', '.join(sorted(unknown))} "
            f"(a group takes {', '.join(GROUP_KEYS)})"
        )
    if "epochs" in group:
        _check_epochs(group["epochs"], path, f"group {group['name']!r} epochs")


def _check_entry(entry: Any, group: dict[str, Any], path: Path) -> None:
    if not isinstance(entry, dict) or "label" not in entry or "model" not in entry:
        raise ConfigError(f"{path}: every run needs a label and a model, got {entry}")
    where = f"{path}: run {entry['label']!r} of group {group['name']!r}"
    unknown = set(entry) - set(ENTRY_KEYS)
    if unknown:
        keys, takes = ", ".join(sorted(unknown)), ", ".join(ENTRY_KEYS)
        raise ConfigError(f"{where} has unknown keys {keys} (a run takes {takes})")
    overrides = entry.get("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(item, str) for item in overrides):
        raise ConfigError(
            f"{where}: overrides must be a list of KEY=VALUE strings, e.g. [optim.lr=0.001]; got {overrides!r}"
        )
    for item in overrides:
        key = item.partition("=")[0].strip()
        if any(key == own or (own.endswith(".") and key.startswith(own)) for own in STUDY_OWN_KEYS):
            raise ConfigError(
                f"{where}: overrides set {key}, which the study sets for every run (from a run's model and "
                "options, the plan's seeds and data)"
            )
        if key == "train.epochs" and "epochs" in group:  # the group's schedule would silently win
            raise ConfigError(f"{where}: overrides set train.epochs, which the group's epochs list sets")


def _check_epochs(epochs: Any, path: Path, where: str) -> None:
    counts = epochs if isinstance(epochs, list) else []
    if not counts or len(set(counts)) != len(counts) or not all(_is_count(n) for n in counts):
        raise ConfigError(
            f"{path}: {where} must be a list of different positive epoch counts, e.g. [1, 3, 6]; got {epochs!r}"
        )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_overrides(plan: StudyPlan, path: Path) -> None:
    """The recipe with the plan's overrides, and with each run's own after them, is a configuration the
    trainer accepts: a bad key or value fails when the plan loads, not after hours of other runs."""
    try:
        load_config(plan.recipe, plan.overrides)
    except ConfigError as exc:
        raise ConfigError(f"{path}: recipe {plan.recipe!r} with the plan's overrides: {exc}") from None
    checked: set[tuple[str, ...]] = {()}
    for spec in plan.runs():
        if spec.overrides in checked:
            continue
        checked.add(spec.overrides)
        try:
            load_config(plan.recipe, [*plan.overrides, *spec.overrides])
        except ConfigError as exc:
            raise ConfigError(f"{path}: the overrides of run {spec.label!r} in group {spec.group!r}: {exc}") from None
