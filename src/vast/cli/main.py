"""Entry point of the `vast` command: one sub-command per module, errors as one line and exit code 2
(or the error's own ``exit_code``: 128 + N when a second stop signal N ended a training run)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from vast import __version__
from vast.cli import (
    bench_cmd,
    data_cmd,
    demo_cmd,
    eval_cmd,
    export_cmd,
    models_cmd,
    predict_cmd,
    stream_cmd,
    study_cmd,
    train_cmd,
)
from vast.errors import VastError

# Each module exposes `register(subparsers)`, which adds its parser and sets `func` to a
# callable taking the parsed namespace and returning an exit code.
COMMAND_MODULES = (
    models_cmd, data_cmd, train_cmd, eval_cmd, predict_cmd, export_cmd, bench_cmd, demo_cmd, study_cmd,
    stream_cmd,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vast",
        description="VAST: efficient attention-free video shift transformers.",
    )
    parser.add_argument("--version", action="version", version=f"vast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (VastError, OSError) as exc:  # OSError: a missing file, no permission, a full disk
        print(f"vast {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"vast {args.command}: interrupted", file=sys.stderr)
        return 130


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, except that a command's optional last positional (named by its
    ``late_positional`` default) may also come after the options: ``vast export CKPT --format dir OUT``.
    (Python 3.11's argparse gives an optional positional nothing once the one before it is read.)"""
    args, extras = parser.parse_known_args(argv)
    late = getattr(args, "late_positional", None)
    if late and getattr(args, late) is None and len(extras) == 1 and not extras[0].startswith("-"):
        setattr(args, late, extras.pop())
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _one_line(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.strerror or text}: {exc.filename}"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
