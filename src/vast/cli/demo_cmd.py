"""`vast demo`: Moving-Digits data, vast_nano on the CPU, the temporal-shift ablation, a report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="make the Moving-Digits data, train vast_nano on CPU with and without temporal shift, report"
    )
    parser.add_argument("--out", type=Path, default=Path("vast-demo"), help="output folder (default vast-demo)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--epochs", type=int, help="training epochs per model (default: the demo recipe's)")
    parser.add_argument("--num-train", type=int, default=2000, help="training videos (default 2000)")
    parser.add_argument("--num-val", type=int, default=400, help="validation videos (default 400)")
    parser.add_argument("--quick", action="store_true", help="a shorter demo: 800 training videos, 2 epochs")
    parser.add_argument("--no-ablation", action="store_true", help="skip the run without temporal shift")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="recipe override"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vast.demo import run_demo

    num_train, epochs = args.num_train, args.epochs
    if args.quick:
        num_train, epochs = min(num_train, 800), epochs or 2
    result = run_demo(
        args.out,
        seed=args.seed,
        epochs=epochs,
        num_train=num_train,
        num_val=args.num_val,
        ablation=not args.no_ablation,
        overrides=args.overrides,
        quiet=args.quiet,
    )
    print(f"\nVAST demo (seed {args.seed}), single-clip validation top-1 on {args.num_val} videos:")
    for r in result.runs:
        print(
            f"  {r.label:<30} {r.top1:6.1f} %   (right time-reversal pair {r.pair_accuracy:5.1f} %, {r.seconds:.0f} s)"
        )
    print(f"total {result.total_seconds:.0f} s; report: {result.report}")
    return 0
