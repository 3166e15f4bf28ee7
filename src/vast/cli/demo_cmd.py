"""`vast demo`: the end-to-end demo on the Moving-Digits data set."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="make the Moving-Digits data, train vast_nano on CPU, evaluate, report"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("vast demo: not yet available (the training engine has not landed yet).")
    return 0
