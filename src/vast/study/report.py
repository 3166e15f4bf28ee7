"""The study's report: seeds aggregated per configuration, and a plain verdict per claim.

The first configuration of a group is its subject (VAST, or the dynamic affine); every other one is
compared with it. A difference of mean top-1 within the seed spread (the larger of the two standard
deviations over seeds) is *within noise*; beyond it the claim *held* (the subject is better) or is
*not held*.

A ``convergence`` group (a plan's ``epochs`` schedule) gets one table row per label instead: top-1 at
each step count, and the verdict of its first label against it at each of them, since a verdict taken
at one short schedule can be an artefact of that schedule.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from vast.engine.tables import markdown_table
from vast.study.plan import GMACS_TOLERANCE, RunSpec, StudyPlan


def summarise(plan: StudyPlan, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration of each group, in plan order (a configuration shared by several groups,
    such as the default model, appears in each): means and spreads over the recorded seeds."""
    by_key = {record["key"]: record for record in records}
    rows: dict[tuple[str, str, int | None], list[tuple[RunSpec, dict[str, Any]]]] = {}
    for spec in plan.runs():  # a group's epochs schedule: one row per label and epoch count
        runs = rows.setdefault((spec.group, spec.label, spec.epochs), [])
        if spec.key in by_key:
            runs.append((spec, by_key[spec.key]))
    return [_row(runs) for runs in rows.values() if runs]


def _row(runs: list[tuple[RunSpec, dict[str, Any]]]) -> dict[str, Any]:
    spec, first = runs[0]
    records = [record for _, record in runs]
    top1 = [r["top1"] for r in records]
    steps = [r.get("steps") for r in records]  # records written before they counted steps have none
    return {
        "group": spec.group,
        "label": spec.label,
        "claim": spec.claim,
        "epochs": spec.epochs,
        "steps": statistics.fmean(steps) if None not in steps else None,
        "model": first["model"],
        "options": first["options"],
        "seeds": [r["seed"] for r in records],
        "num_classes": first.get("num_classes"),
        "top1": statistics.fmean(top1),
        "top1_std": statistics.stdev(top1) if len(top1) > 1 else 0.0,
        "top5": statistics.fmean(r["top5"] for r in records),
        "gmacs": first["gmacs"],
        "gmacs_target": first.get("gmacs_target"),
        "params": first["params"],
        "train_memory_mb": statistics.fmean(r["train_memory_mb"] for r in records),
        "latency_ms": statistics.fmean(r["latency_ms"] for r in records),
        "train_seconds": statistics.fmean(r["train_seconds"] for r in records),
    }


def verdict(subject: dict[str, Any], other: dict[str, Any]) -> tuple[float, float, str]:
    """(difference of mean top-1, the noise it is judged against, the verdict) for ``subject``."""
    difference = subject["top1"] - other["top1"]
    noise = max(subject["top1_std"], other["top1_std"])
    if len(subject["seeds"]) < 2 or len(other["seeds"]) < 2:
        return difference, noise, "one seed: no verdict"
    if abs(difference) <= noise:
        return difference, noise, "within noise"
    return difference, noise, "held" if difference > 0 else "not held"


def _groups(summary: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in summary:
        groups.setdefault(row["group"], []).append(row)
    return groups


def _matched(row: dict[str, Any], subject: dict[str, Any]) -> str:
    """The GMACs ratio; flagged where a matched-compute comparison (the attention claim) misses."""
    ratio = row["gmacs"] / subject["gmacs"]
    missed = row["claim"] in ("attention", "convergence") and abs(ratio - 1) > GMACS_TOLERANCE
    return f"{ratio:.2f}x" + (" (not matched)" if missed else "")


def group_table(rows: list[dict[str, Any]]) -> str:
    subject = rows[0]
    lines = []
    for row in rows:
        difference, _, said = verdict(subject, row) if row is not subject else (0.0, 0.0, "subject")
        lines.append(
            [
                row["label"],
                row["model"],
                f"{row['gmacs']:.4f}",
                _matched(row, subject),
                f"{row['params'] / 1e6:.2f}",
                f"{row['top1']:.1f} ± {row['top1_std']:.1f} ({len(row['seeds'])})",
                f"{row['top5']:.1f}",
                f"{row['train_memory_mb']:.0f}",
                f"{row['latency_ms']:.1f}",
                f"{row['train_seconds']:.0f}",
                "" if row is subject else f"{difference:+.1f}: {said}",
            ]
        )
    header = [
        "configuration", "model", "GMACs", "GMACs / first", "params M", "top-1 % ± std (seeds)", "top-5 %",
        "train MiB", "latency ms", "train s", "first - this",
    ]  # fmt: skip
    return markdown_table(header, lines)


def _by_label(rows: list[dict[str, Any]]) -> dict[str, dict[int | None, dict[str, Any]]]:
    """A convergence group's rows: label -> epoch count -> row, both in plan order."""
    labels: dict[str, dict[int | None, dict[str, Any]]] = {}
    for row in rows:
        labels.setdefault(row["label"], {})[row["epochs"]] = row
    return labels


def _steps_heading(epochs: int | None, column: list[dict[str, Any]]) -> str:
    """A column's optimiser steps as the records count them (the same for every label on one data set
    and batch size; a range if not), with the epochs that gave them."""
    steps = sorted({round(row["steps"]) for row in column if row["steps"] is not None})
    schedule = "the recipe's epochs" if epochs is None else f"{epochs} ep."
    if not steps:
        return schedule
    counted = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
    return f"{counted} steps ({schedule})"


def _spread(row: dict[str, Any] | None) -> str:
    return "" if row is None else f"{row['top1']:.1f} ± {row['top1_std']:.1f} ({len(row['seeds'])})"


def convergence_table(rows: list[dict[str, Any]]) -> str:
    """One row per label: top-1 mean ± std (seeds) at each step count of the group's schedule, and the
    first label's difference and verdict against it at each step count where both have records."""
    labels = _by_label(rows)
    schedule = list(dict.fromkeys(row["epochs"] for row in rows))
    subject = next(iter(labels.values()))
    lines = []
    for label, points in labels.items():
        first = next(iter(points.values()))
        lines.append(
            [label, first["model"], f"{first['gmacs']:.4f}", _matched(first, next(iter(subject.values()))),
             *(_spread(points.get(e)) for e in schedule), "" if points is subject else _verdicts(subject, points)]
        )  # fmt: skip
    headings = [_steps_heading(e, [p[e] for p in labels.values() if e in p]) for e in schedule]
    header = ["configuration", "model", "GMACs", "GMACs / first", *headings, "first - this, at each step count"]
    return markdown_table(header, lines)


def _verdicts(subject: dict[int | None, dict[str, Any]], points: dict[int | None, dict[str, Any]]) -> str:
    """``+1.2 held / -0.3 within noise / ...``: the subject against this label, step count by step count."""
    said = []
    for epochs, row in points.items():
        if epochs in subject:
            difference, _, word = verdict(subject[epochs], row)
            said.append(f"{difference:+.1f} {word}")
    return " / ".join(said)


def _table(rows: list[dict[str, Any]]) -> str:
    return convergence_table(rows) if rows[0]["claim"] == "convergence" else group_table(rows)


def _machines(records: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """The CPUs the runs trained on (records before runs named theirs count as ``machine``'s)."""
    cpus = sorted({record.get("cpu", machine.get("cpu", "?")) for record in records} or {machine.get("cpu", "?")})
    if len(cpus) == 1:
        return cpus[0]
    return "runs on several machines (times compare only within one): " + "; ".join(cpus)


def write_report(
    plan: StudyPlan, records: list[dict[str, Any]], out_dir: Path, machine: dict[str, Any], figures: list[Path]
) -> Path:
    """``<out_dir>/report.md``: the setting, one table per group, the verdicts and the figures."""
    summary = summarise(plan, records)
    first = records[0] if records else {}
    lines = [
        f"# Study `{plan.name}`",
        "",
        f"Recipe `{plan.recipe}` for every run; data {plan.data}; seeds {plan.seeds}; input "
        f"{tuple(first.get('input_shape', ()))}; top-1 is single-clip validation accuracy. Machine: "
        f"{_machines(records, machine)}, torch {machine.get('torch', '?')}. Latency: batch 1, eager, as "
        "trained. Training memory: peak tensor bytes of one training step on one clip.",
        "",
        f"A configuration's verdict compares it with the first of its group: `held` when the first is "
        f"better by more than the seed spread, `not held` when worse by more, `within noise` otherwise. "
        f"In the attention comparison the GMACs of every model must lie within {GMACS_TOLERANCE:.0%} of "
        "the first's; an ablation keeps the architecture and so may cost less (a static affine has no "
        "C -> 2C projection).",
    ]
    if any(row["claim"] == "convergence" for row in summary):
        lines += [
            "",
            "A convergence group trains every configuration once per epoch count of its schedule, each a "
            "whole training with its own learning-rate schedule; its table gives top-1 % ± std (seeds) at "
            "the optimiser steps the records count, and the verdict against the first row at each of them.",
        ]
    for name, rows in _groups(summary).items():
        lines += ["", f"## {name}", "", _table(rows)]
    for figure in figures:
        lines += ["", f"![{figure.stem}]({figure.name})"]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def finish(plan: StudyPlan, out_dir: Path, records: list[dict[str, Any]], machine: dict[str, Any]) -> Path:
    """The figures and ``report.md`` of the records so far."""
    from vast.study.plots import write_plots

    figures = write_plots(summarise(plan, records), out_dir)
    return write_report(plan, records, out_dir, machine, figures)
