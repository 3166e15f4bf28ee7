"""Accuracy of int8 inference on trained models: fp32 against int8 dynamic and int8 static, on the same clips.

Trains (or resumes, or reuses, from ``<work>/<name>/last.pt``) three models and evaluates each in the three
forms on its whole validation set, single clip, as ``vast eval`` and ``vast eval --quantize MODE`` do:

* ``demo``: the model ``vast demo`` trains (the ``demo`` recipe, vast_nano on Moving-Digits, seed 0);
* ``study-nano``: vast_nano from the ``study`` recipe on the study set (``vast data make-study``);
* ``study-tiny-112``: vast_tiny trained briefly at 8 x 112² on the study set (the study recipe with
  ``data.short_side=112 data.crop_size=112`` and ``--tiny-epochs`` epochs).

The int8 copies are made by ``vast.deploy.quantize`` (torchao PT2E, lowered by inductor); static ones are
calibrated on ``--calibration-clips`` training clips picked as ``vast eval --quantize static`` picks them.
It reports top-1 of each form, the per-class accuracy deltas, and how the logits compare with fp32's on the
same clips: the largest absolute difference, that difference over the spread (std) of fp32's logits, and
the share of clips whose top-1 class is the same. It writes every number to ``--out`` (JSON).

Usage::

    python benchmarks/quantize_accuracy.py [--work quantize-accuracy] [--models demo,study-nano,study-tiny-112]
        [--tiny-epochs 1] [--calibration-clips 32] [--out quantize-accuracy/accuracy.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from vast.bench import machine_info
from vast.data.moving_digits import make_moving_digits
from vast.data.study_set import make_study_set
from vast.deploy import quantize
from vast.deploy.quantize import MODES, describe_form
from vast.engine.config import load_config
from vast.engine.data import build_eval_dataset, eval_loader
from vast.engine.distributed import DistInfo
from vast.engine.evaluate import LoadedRun, load_run
from vast.engine.metrics import AccuracyMeter
from vast.engine.quantization import DEFAULT_CALIBRATION_CLIPS, calibration_clips, clip_shape
from vast.engine.train import train


@dataclass(frozen=True)
class TrainedModel:
    """How one of the measured models is trained: a shipped recipe, its data set and overrides."""

    recipe: str
    data: str  # "demo" (Moving-Digits) or "study"
    overrides: tuple[str, ...] = ()
    epochs_option: bool = False  # trained for --tiny-epochs


MODELS = {
    "demo": TrainedModel("demo", "demo"),
    "study-nano": TrainedModel("study", "study"),
    "study-tiny-112": TrainedModel(
        "study", "study", ("model.name=vast_tiny", "data.short_side=112", "data.crop_size=112"), epochs_option=True
    ),
}


def data_lists(kind: str, work: Path) -> tuple[Path, Path]:
    """The train / val annotations of the demo or study set, written under ``work`` unless present."""
    root = work / f"{kind}-data"
    if (root / "train.txt").is_file() and (root / "val.txt").is_file():
        return root / "train.txt", root / "val.txt"
    if kind == "demo":
        made = make_moving_digits(root, num_train=2000, num_val=400, seed=0, progress=False)  # vast demo's set
        return made.train, made.val
    return make_study_set(root, progress=False)


def trained_run(name: str, work: Path, tiny_epochs: int) -> tuple[LoadedRun, float]:
    """The trained run ``name`` and the seconds this call trained it: the trainer resumes a run stopped
    part way (its ``last.pt``) and returns at once for a finished one."""
    spec, run_dir = MODELS[name], work / name
    train_list, val_list = data_lists(spec.data, work)
    overrides = [f"data.train={train_list}", f"data.val={val_list}", f"train.output_dir={run_dir}",
                 "train.seed=0", *spec.overrides]  # fmt: skip
    if spec.epochs_option:
        overrides.append(f"train.epochs={tiny_epochs}")
    started = time.perf_counter()
    train(load_config(spec.recipe, overrides), quiet=True)
    seconds = time.perf_counter() - started
    run = load_run(run_dir / "last.pt")
    run.model.eval()
    return run, seconds


@dataclass
class FormScores:
    """One form's scores, and its logits' comparison with fp32's on the same clips."""

    meter: AccuracyMeter
    max_abs_diff: float = 0.0
    agree: int = 0
    diffs: list[float] = field(default_factory=list)


def int8_forms(run: LoadedRun, calibration: int) -> dict[str, torch.nn.Module]:
    example = torch.randn((1, *clip_shape(run)), generator=torch.Generator().manual_seed(0))
    forms: dict[str, torch.nn.Module] = {}
    for mode in MODES:
        batches = calibration_clips(run, calibration) if mode == "static" else None
        forms[f"int8 {mode}"] = quantize(run.model, mode, example=example, calibration=batches)
    return forms


@torch.no_grad()
def compare_forms(run: LoadedRun, forms: dict[str, torch.nn.Module]) -> tuple[dict[str, FormScores], float]:
    """Every form on every validation clip (single centre clip, as ``vast eval``); fp32's logit std."""
    dataset = build_eval_dataset(run.config.data)
    loader = eval_loader(dataset, 8, run.config.data.num_workers, DistInfo(device=torch.device("cpu")))
    classes = len(run.class_names)
    scores = {"fp32": FormScores(AccuracyMeter(classes))} | {name: FormScores(AccuracyMeter(classes)) for name in forms}
    reference_logits = []
    for batch in loader:
        if batch.labels.numel() == 0:
            continue
        reference = run.model(batch.clips).float()
        reference_logits.append(reference)
        scores["fp32"].meter.add(reference, batch.labels)
        for name, model in forms.items():
            logits = model(batch.clips).float()
            form = scores[name]
            form.meter.add(logits, batch.labels)
            form.max_abs_diff = max(form.max_abs_diff, float((logits - reference).abs().max()))
            form.agree += int((logits.argmax(-1) == reference.argmax(-1)).sum())
    return scores, float(torch.cat(reference_logits).std())


def summarise(name: str, run: LoadedRun, scores: dict[str, FormScores], spread: float, seconds: float) -> dict:
    reference = scores["fp32"].meter
    videos = reference.videos
    forms = {}
    for form, score in scores.items():
        per_class = score.meter.per_class(run.class_names)
        forms[form] = {
            "top1": score.meter.top1,
            "top1_drop": reference.top1 - score.meter.top1,
            "per_class": per_class,
            "per_class_delta": {c: per_class[c] - reference.per_class(run.class_names)[c] for c in per_class},
            "max_abs_logit_diff": score.max_abs_diff,
            "max_abs_logit_diff_over_std": score.max_abs_diff / spread if spread else 0.0,
            "top1_agreement": 100.0 * score.agree / videos if form != "fp32" else 100.0,
        }
    return {
        "model": name,
        "arch": run.config.model.name,
        "input": list(clip_shape(run)),
        "val_videos": videos,
        "train_seconds": seconds,
        "fp32_logit_std": spread,
        "forms": forms,
    }


def print_tables(result: dict) -> None:
    print(f"\n## {result['model']} ({result['arch']}, {'x'.join(map(str, result['input']))}, "
          f"{result['val_videos']} validation videos)\n")  # fmt: skip
    print("| form | top-1 | drop | top-1 agreement | max abs logit diff | (x fp32 logit std) |")
    print("|---|---|---|---|---|---|")
    for form, r in result["forms"].items():
        print(f"| {form} | {r['top1']:.2f} % | {r['top1_drop']:+.2f} | {r['top1_agreement']:.2f} % | "
              f"{r['max_abs_logit_diff']:.4f} | {r['max_abs_logit_diff_over_std']:.4f} |")  # fmt: skip
    forms = [f for f in result["forms"] if f != "fp32"]
    print("\n| class | fp32 | " + " | ".join(f"{f} delta" for f in forms) + " |")
    print("|---|---|" + "---|" * len(forms))
    for cls, acc in result["forms"]["fp32"]["per_class"].items():
        deltas = " | ".join(f"{result['forms'][f]['per_class_delta'][cls]:+.2f}" for f in forms)
        print(f"| {cls} | {acc:.2f} | {deltas} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("quantize-accuracy"), help="data sets and runs")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--tiny-epochs", type=int, default=1, help="epochs of study-tiny-112 (default 1: 200 steps)")
    parser.add_argument("--calibration-clips", type=int, default=DEFAULT_CALIBRATION_CLIPS)
    parser.add_argument("--out", type=Path, default=None, help="JSON of every number (default <work>/accuracy.json)")
    args = parser.parse_args()
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    machine = machine_info(torch.device("cpu"))
    print(f"machine: {machine}")
    results = []
    for name in names:
        run, seconds = trained_run(name, args.work, args.tiny_epochs)
        forms = int8_forms(run, args.calibration_clips)
        scores, spread = compare_forms(run, forms)
        result = summarise(name, run, scores, spread, seconds)
        result["forms_detail"] = {form: describe_form(model) for form, model in forms.items()}
        print_tables(result)
        results.append(result)
    out = args.out or args.work / "accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": machine, "calibration_clips": args.calibration_clips,
                               "results": results}, indent=2))  # fmt: skip
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
