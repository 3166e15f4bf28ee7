"""Running a study: every run of a plan trained, evaluated and measured, one record each.

Records go to ``<out>/study.json`` after every run (written atomically), so an interrupted study goes
on where it stopped: a run whose key is recorded is not run again, and a run that was stopped mid-way
resumes from its own ``last.pt``.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from vast.bench.machine import machine_info
from vast.engine.config import RunConfig, load_config
from vast.engine.evaluate import evaluate, load_run
from vast.engine.train import TrainResult, train
from vast.errors import ConfigError
from vast.models.flops import meta_flops
from vast.models.saved_options import pin_options
from vast.study.plan import GMACS_TOLERANCE, RunSpec, StudyPlan

_logger = logging.getLogger(__name__)
RECORDS = "study.json"


# ---- data --------------------------------------------------------------------------------------------


def _generator(name: str) -> Callable[..., Any]:
    if name == "moving-digits":
        from vast.data.moving_digits import make_moving_digits

        return make_moving_digits
    if name == "study":
        from vast.data.study_set import make_study_set

        return make_study_set
    raise ConfigError(f"unknown study data generator {name!r}; choose moving-digits or study")


def ensure_data(plan: StudyPlan, data_dir: Path, progress: bool = True) -> tuple[Path, Path]:
    """The plan's training and validation annotations: its own (``data: {train, val}``, used as they are,
    nothing written), else its generator's set in ``data_dir`` (written unless a set of the same settings
    is there)."""
    if plan.on_annotations:
        return Path(plan.data["train"]), Path(plan.data["val"])
    settings = {key: value for key, value in plan.data.items() if key != "generator"}
    stamp = data_dir / "study-data.json"
    wanted = {"generator": plan.data.get("generator", "study"), **settings}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted):
        _generator(wanted["generator"])(data_dir, progress=progress, **settings)
        stamp.write_text(json.dumps(wanted))
    train_list, val_list = data_dir / "train.txt", data_dir / "val.txt"
    for path in (train_list, val_list):
        if not path.is_file():
            raise ConfigError(f"the {wanted['generator']} generator wrote no {path.name} in {data_dir}")
    return train_list, val_list


def data_overrides(plan: StudyPlan) -> list[str]:
    """``data.root``, ``data.format`` and ``data.split`` of a plan on its own annotations: the plan's, else
    the defaults (videos next to the annotations, the format detected, no split), never the recipe's,
    which go with the recipe's own annotations. A generated set keeps the recipe's (none for ``study``)."""
    if not plan.on_annotations:
        return []
    defaults = {"root": "", "format": "auto", "split": 0}
    return [f"data.{key}={plan.data.get(key, default)}" for key, default in defaults.items()]


# ---- one run -----------------------------------------------------------------------------------------


def input_shape(config: RunConfig) -> tuple[int, int, int, int, int]:
    """One clip of the recipe: ``(1, 3, frames, crop, crop)``."""
    return (1, 3, config.data.num_frames, config.data.crop_size, config.data.crop_size)


def resolve_options(spec: RunSpec, shape: tuple[int, ...]) -> tuple[dict[str, Any], float | None]:
    """The run's options, with a peer sized to its ``match_gmacs`` target; and that target."""
    if not spec.match_gmacs:
        return dict(spec.options), None
    reference = spec.match_gmacs
    target = meta_flops(reference["model"], shape, **dict(reference.get("options") or {}))[0]
    target *= float(reference.get("factor", 1.0))
    from vast.models.peer_sizing import options_for_gmacs

    sized = options_for_gmacs(spec.model, target, shape, tolerance=GMACS_TOLERANCE)
    return {**spec.options, **sized}, target


def _config(plan: StudyPlan, spec: RunSpec, data: tuple[Path, Path], run_dir: Path) -> RunConfig:
    return load_config(
        plan.recipe,
        [
            f"data.train={data[0]}",
            f"data.val={data[1]}",
            *data_overrides(plan),
            f"train.output_dir={run_dir}",
            f"train.seed={spec.seed}",
            f"model.name={spec.model}",
            *plan.overrides,
            *spec.overrides,  # the run's own, last
        ],
    )  # train.memory_lean: the trainer skips it for a peer that has no memory-lean form


def latency_ms(model: torch.nn.Module, shape: tuple[int, ...], repeats: int = 9) -> float:
    """Median batch-1 inference time of ``model`` (eager, as trained) in milliseconds, after 3 warm-up
    passes, timed as ``vast bench`` times (:mod:`vast.bench.timing`)."""
    from vast.bench.timing import inference_runner, interleaved_times

    runners = {"model": inference_runner(model, torch.randn(shape))}
    interleaved_times(runners, {"model": 3})
    return 1e3 * statistics.median(interleaved_times(runners, {"model": repeats})["model"])


def training_memory_mb(model: str, options: dict[str, Any], shape: tuple[int, ...]) -> float:
    """Peak tensor memory of one training step on one clip (``vast.bench``'s measure)."""
    from vast.bench.memory import training_peak
    from vast.bench.specs import ModelSpec

    spec = ModelSpec(model, tuple(shape), tuple(sorted(options.items())))
    return training_peak(spec, torch.device("cpu"), torch.float32) / 2**20


def _final_scores(result: TrainResult, run: Any, config: RunConfig, quiet: bool) -> tuple[float, float]:
    """Single-clip top-1 and top-5 of the trained weights: the trainer's own last validation when this
    process ran it (the same measure), else one evaluation of ``last.pt``."""
    last = result.history[-1] if result.history else None
    if last is not None and last.get("epoch") == config.train.epochs:
        return last["top1"], last["top5"]
    scores = evaluate(run, clips=1, crops=1, workers=config.data.num_workers, progress=not quiet)
    return scores.top1, scores.top5


def run_one(plan: StudyPlan, spec: RunSpec, data: tuple[Path, Path], run_dir: Path, quiet: bool) -> dict[str, Any]:
    """Train, evaluate and measure one run; its record."""
    shape = input_shape(load_config(plan.recipe, [*plan.overrides, *spec.overrides]))
    options, target = resolve_options(spec, shape)
    options = pin_options(spec.model, options)  # the record names the architecture it trained
    spec = replace(spec, options=options, match_gmacs=None)
    config = _config(plan, spec, data, run_dir)
    config.model.options = dict(options)
    last = run_dir / "last.pt"
    result = train(config, resume=last if last.is_file() else None, quiet=quiet)
    run = load_run(result.output_dir / "last.pt")
    top1, top5 = _final_scores(result, run, config, quiet)
    gmacs, params = meta_flops(spec.model, shape, len(run.class_names), **options)
    return {
        "model": spec.model,
        "options": options,
        "seed": spec.seed,
        "overrides": list(spec.overrides),
        "num_classes": len(run.class_names),
        "input_shape": list(shape),
        "params": params,
        "gmacs": gmacs,
        "gmacs_target": target,
        "top1": top1,
        "top5": top5,
        "train_seconds": result.seconds,
        "epochs": result.epochs_done,
        "steps": result.steps_done,  # optimiser steps
        "latency_ms": latency_ms(run.model, shape),
        "train_memory_mb": training_memory_mb(spec.model, options, shape),
        "run_dir": str(run_dir),
        "cpu": machine_info(torch.device("cpu"))["cpu"],  # a study resumed elsewhere names each run's machine
    }


# ---- the study ---------------------------------------------------------------------------------------


def read_records(out_dir: Path) -> list[dict[str, Any]]:
    path = out_dir / RECORDS
    if not path.is_file():
        return []
    return json.loads(path.read_text())["records"]


def write_records(out_dir: Path, plan: StudyPlan, records: list[dict[str, Any]]) -> Path:
    """``study.json``, replaced atomically: a study killed mid-write keeps its previous records."""
    path = out_dir / RECORDS
    machine = machine_info(torch.device("cpu"))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"plan": plan.name, "machine": machine, "records": records}, indent=1))
    os.replace(tmp, path)
    return path


def run_study(
    plan: StudyPlan,
    out_dir: str | Path,
    quiet: bool = False,
    on_run: Callable[[int, int, RunSpec, bool], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every run of ``plan`` that ``<out_dir>/study.json`` does not hold yet; all records."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = ensure_data(plan, out_dir / "data", progress=not quiet)
    records = read_records(out_dir)
    done = {record["key"] for record in records}
    unique: dict[str, RunSpec] = {}
    for spec in plan.runs():  # a configuration shared by several groups is run once, where it first appears
        unique.setdefault(spec.key, spec)
    runs = list(unique.values())
    for index, spec in enumerate(runs):
        if on_run is not None:
            on_run(index, len(runs), spec, spec.key in done)
        if spec.key in done:
            continue
        _logger.info("study run %d/%d: %s seed %d", index + 1, len(runs), spec.label, spec.seed)
        record = {"key": spec.key, **run_one(plan, spec, data, out_dir / "runs" / spec.key, quiet)}
        records.append(record)
        write_records(out_dir, plan, records)
    return records
