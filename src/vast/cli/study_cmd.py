"""`vast study PLAN`: train every model of a study plan with one recipe and several seeds, report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "study", help="train the models of a study plan side by side (same data, recipe, seeds) and report"
    )
    parser.add_argument("plan", nargs="?", help="a shipped plan name (see --list) or a plan YAML file")
    parser.add_argument("--out", type=Path, help="output folder (default study-<plan>[-quick]); resumed if it exists")
    parser.add_argument("--quick", action="store_true", help="the plan's small, fast form (CI, a first look)")
    parser.add_argument("--list", action="store_true", help="list the shipped plans and their runs")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="recipe override for every run (e.g. train.device=cuda)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vast.errors import ConfigError
    from vast.study import load_plan, plan_names, run_study

    if args.list:
        for name in plan_names():
            plan = load_plan(name)
            groups = ", ".join(f"{g['name']} ({_entries(g)})" for g in plan.groups)
            configs = len({spec.config_key for spec in plan.runs()})
            print(f"{name}: {configs} configurations x seeds {plan.seeds}; groups: {groups}")
        return 0
    if not args.plan:
        raise ConfigError(f"name a study plan ({', '.join(plan_names())}) or a plan YAML file")
    plan = load_plan(args.plan, quick=args.quick)
    plan.overrides += args.overrides
    out = args.out or Path(f"study-{plan.name}{'-quick' if args.quick else ''}")

    def announce(index: int, total: int, spec, done: bool) -> None:
        state = "recorded, skipped" if done else "training"
        schedule = "" if spec.epochs is None else f", {spec.epochs} epochs"
        print(f"[{index + 1}/{total}] {spec.group}: {spec.label}{schedule}, seed {spec.seed} ({state})", flush=True)

    records = run_study(plan, out, quiet=args.quiet, on_run=announce)
    import torch

    from vast.bench.machine import machine_info
    from vast.study.report import finish, summarise

    report = finish(plan, out, records, machine_info(torch.device("cpu")))
    print()
    for row in summarise(plan, records):
        label = row["label"] if row["epochs"] is None else f"{row['label']} @ {row['epochs']} ep."
        print(f"{row['group']:<22} {label:<28} top-1 {row['top1']:5.1f} ± {row['top1_std']:4.1f}"
              f"  {row['gmacs']:.4f} GMACs")  # fmt: skip
    print(f"\nrecords: {out / 'study.json'}; report: {report}")
    return 0


def _entries(group: dict[str, Any]) -> str:
    """A group's size for --list: its entries, times its epoch counts when it has a schedule."""
    epochs = group.get("epochs")
    return f"{len(group['runs'])}" if not epochs else f"{len(group['runs'])} x epochs {epochs}"
