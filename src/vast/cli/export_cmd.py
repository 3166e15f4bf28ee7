"""`vast export CHECKPOINT --format F`: write the model for deployment and check parity."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vast.cli.models_cmd import parse_shape
from vast.engine.evaluate import load_run
from vast.engine.export import FORMATS, PARITY_TOLERANCE, SUFFIXES, export_model


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a trained model and verify parity")
    parser.add_argument("checkpoint", help="best.pt / last.pt of a run, or the run folder")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", type=Path, help="output file (default: next to the checkpoint)")
    parser.add_argument("--input", type=parse_shape, help="example input shape (default: 1,3,T,crop,crop of the run)")
    parser.add_argument("--ema", action="store_true", help="export the EMA weights")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_ = load_run(args.checkpoint, ema=args.ema)
    data = run_.config.data
    shape = args.input or (1, 3, data.num_frames, data.crop_size, data.crop_size)
    run_.model.check_input(torch.empty(shape, device="meta"))
    out = args.out or run_.checkpoint_path.with_name(run_.checkpoint_path.stem + SUFFIXES[args.format])
    result = export_model(run_.model, args.format, out, shape)
    status = "ok" if result.ok else f"MISMATCH (tolerance {PARITY_TOLERANCE:g})"
    print(f"wrote {result.path} ({args.format}, input {'x'.join(map(str, shape))})")
    print(f"parity with the eager model: max abs diff {result.max_abs_diff:.2e}, {status}")
    return 0 if result.ok else 1
