"""`vast data ...`: make the demo data set, check a data set for broken videos."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="data set tools (make-demo, check)")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
