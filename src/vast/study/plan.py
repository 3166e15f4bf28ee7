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

``match_gmacs`` sizes a peer so that its multiply-adds at the study input lie within 15 % of the
named model's times ``factor`` (:func:`vast.models.peers.options_for_gmacs`); its options are then
fixed in the run's record, so every record rebuilds its model with ``vast.create_model``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vast.errors import ConfigError

GMACS_TOLERANCE = 0.15
CLAIMS = ("attention", "affine", "ablation")


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

    @property
    def config_key(self) -> str:
        """Names the configuration (model, options, compute target), the same for every seed."""
        what = [self.model, self.options, self.match_gmacs]
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

    def runs(self) -> list[RunSpec]:
        """Every run of the plan, seeds innermost, so that a stopped study has whole configurations."""
        return [
            RunSpec(
                group=group["name"],
                label=entry["label"],
                model=entry["model"],
                options=dict(entry.get("options") or {}),
                seed=seed,
                claim=group.get("claim", "ablation"),
                match_gmacs=entry.get("match_gmacs"),
            )
            for group in self.groups
            for entry in group["runs"]
            for seed in self.seeds
        ]


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
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {"name", "recipe", "data", "seeds", "overrides", "quick", "groups"}
    if unknown:
        raise ConfigError(f"{path}: unknown plan keys {', '.join(sorted(unknown))}")
    plan = StudyPlan(
        name=raw.get("name", path.stem),
        recipe=raw.get("recipe", "study"),
        data=dict(raw.get("data") or {}),
        seeds=list(raw.get("seeds") or [0]),
        groups=list(raw.get("groups") or []),
        overrides=list(raw.get("overrides") or []),
    )
    if quick:
        small = raw.get("quick") or {}
        plan.seeds = list(small.get("seeds", plan.seeds))
        plan.data.update(small.get("data") or {})
        plan.overrides += list(small.get("overrides") or [])
    _check(plan, path)
    return plan


def _check(plan: StudyPlan, path: Path) -> None:
    if not plan.groups:
        raise ConfigError(f"{path}: the plan has no groups of runs")
    for group in plan.groups:
        if "name" not in group or not group.get("runs"):
            raise ConfigError(f"{path}: every group needs a name and runs, got {group}")
        if group.get("claim", "ablation") not in CLAIMS:
            raise ConfigError(f"{path}: group {group['name']!r} claim must be one of {', '.join(CLAIMS)}")
        for entry in group["runs"]:
            if "label" not in entry or "model" not in entry:
                raise ConfigError(f"{path}: every run needs a label and a model, got {entry}")
