"""`vast train RECIPE [--set key=value ...]`: train a model (``torchrun ... -m vast train`` for DDP).

Run again, the same command continues the run in its output folder (``train.auto_resume``); a stop
signal (SIGTERM, SIGUSR1, SIGINT) writes ``last.pt`` and exits with code 75 (docs/training.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vast.engine.checkpoint import load_checkpoint
from vast.engine.config import all_keys, load_config, recipe_names


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model from a recipe",
        description="Train from a YAML recipe (a file, or a shipped name: " + ", ".join(recipe_names()) + ").",
    )
    parser.add_argument("recipe", nargs="?", help="recipe file or shipped recipe name, e.g. demo")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.lr=0.001 --set model.options.norm=layernorm",
    )
    parser.add_argument("--resume", metavar="CHECKPOINT", help="continue a run exactly (last.pt or its folder)")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start over even if the output folder holds a run (its files move to replaced-<time>/)",
    )
    parser.add_argument("--output", metavar="DIR", help="run folder (same as --set train.output_dir=DIR)")
    parser.add_argument("--list-keys", action="store_true", help="print every config key and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list_keys:
        print("\n".join(all_keys()))
        return 0
    if not args.recipe and not args.resume:
        from vast.errors import ConfigError

        raise ConfigError("give a recipe (e.g. `vast train demo`) or --resume CHECKPOINT")
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"train.output_dir={args.output}")
    base = None
    if args.resume and not args.recipe:  # continue with the run's own configuration
        resume = Path(args.resume)
        base = load_checkpoint(resume)["config"]
        if not args.output:
            overrides.append(f"train.output_dir={resume if resume.is_dir() else resume.parent}")
    config = load_config(args.recipe, overrides, base=base)
    from vast.engine.preemption import TrainingStopped
    from vast.engine.train import train

    if args.restart and args.resume:
        from vast.errors import ConfigError

        raise ConfigError("--restart starts over and --resume continues: give one of them")
    try:
        result = train(config, resume=args.resume, quiet=args.quiet, restart=args.restart)
    except TrainingStopped as stopped:
        print(f"vast train: {stopped}", file=sys.stderr)
        return stopped.exit_code
    if result.is_main:
        print(
            f"trained {config.model.name}: {result.epochs_done} epochs, {result.steps_done} steps in "
            f"{result.seconds:.0f} s; best single-clip val top-1 {result.best_top1:.2f} %"
        )
        print(f"run folder: {result.output_dir} (report.md, last.pt, best.pt, train.csv, val.csv)")
    return 0
