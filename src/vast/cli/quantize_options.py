"""The ``--quantize`` options that `vast eval`, `vast predict` and `vast export` share."""

from __future__ import annotations

import argparse

from vast.deploy.quantize import MODES
from vast.engine.evaluate import LoadedRun
from vast.engine.quantization import DEFAULT_CALIBRATION_CLIPS, quantize_run
from vast.errors import ConfigError


def add_quantize_options(parser: argparse.ArgumentParser, compile_option: bool = True) -> None:
    parser.add_argument(
        "--quantize", choices=MODES,
        help="int8 inference on the CPU (vast.deploy.quantize): static calibrates on training clips and is the "
             "more accurate; dynamic needs no data",
    )  # fmt: skip
    parser.add_argument(
        "--calibration", metavar="ANNOTATIONS",
        help="--quantize static: the videos to calibrate on (default: the run's training set)",
    )  # fmt: skip
    parser.add_argument(
        "--calibration-clips", type=int, default=DEFAULT_CALIBRATION_CLIPS,
        help=f"--quantize static: how many clips, spread over the set (default {DEFAULT_CALIBRATION_CLIPS})",
    )  # fmt: skip
    if not compile_option:  # an export writes the graph; nothing runs it here long enough to compile
        parser.set_defaults(compile=False)
        return
    parser.add_argument(
        "--no-compile", dest="compile", action="store_false",
        help="--quantize: skip inductor's compile (a minute or more): the same int8 numbers, computed slower; "
             "for a few clips",
    )  # fmt: skip


def apply_quantize_options(run: LoadedRun, args: argparse.Namespace) -> LoadedRun:
    """``run`` quantised as the options ask (unchanged without ``--quantize``)."""
    if args.quantize is None:
        if args.calibration is not None:
            raise ConfigError("--calibration is for --quantize static")
        return run
    if getattr(args, "fuse", False):
        raise ConfigError("--fuse and --quantize are two forms of the model: choose one")
    return quantize_run(
        run, args.quantize, clips=args.calibration_clips, calibration=args.calibration, compile=args.compile
    )
