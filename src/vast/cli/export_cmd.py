"""`vast export CHECKPOINT --format F [OUT]`: write the model for deployment and check parity.

``--format dir`` writes a model folder (``config.json``, ``model.safetensors``, ``README.md``; see
:mod:`vast.deploy.package`) that ``vast.create_model``, ``vast eval`` and ``vast predict`` take.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from vast.cli.models_cmd import parse_shape
from vast.cli.quantize_options import add_quantize_options, apply_quantize_options
from vast.deploy import package
from vast.engine.evaluate import load_run
from vast.engine.export import FORMATS, SUFFIXES, export_model, export_package, export_quantized_onnx
from vast.errors import ConfigError

PACKAGE_SUFFIX = "-package"  # the default model folder: best.pt -> best-package/


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a trained model and verify parity")
    parser.add_argument("checkpoint", help="best.pt / last.pt of a run, the run folder, or a model folder")
    parser.add_argument(
        "--format",
        required=True,
        choices=(*FORMATS, package.FORMAT),
        help="a file format, or 'dir': a model folder (config.json, model.safetensors, README.md)",
    )
    parser.add_argument("out_path", nargs="?", type=Path, metavar="OUT", help="output file or folder (as --out)")
    parser.add_argument("--out", type=Path, help="output file or folder (default: next to the checkpoint)")
    parser.add_argument("--input", type=parse_shape, help="example input shape (default: one view of the run)")
    parser.add_argument("--ema", action="store_true", help="export the EMA weights")
    add_quantize_options(parser, compile_option=False)
    parser.set_defaults(func=run, late_positional="out_path")  # OUT may follow the options (cli.main)


def run(args: argparse.Namespace) -> int:
    if args.out_path and args.out and Path(args.out_path) != args.out:
        raise ConfigError(f"two outputs: {args.out_path} and --out {args.out}; give one")
    run_ = load_run(args.checkpoint, ema=args.ema)
    data = run_.config.data
    shape = args.input or package.model_input_shape(run_.model, data.num_frames, data.crop_size)
    run_.model.check_input(torch.empty(shape, device="meta"))
    out = Path(args.out_path or args.out or default_output(run_.checkpoint_path, args.format, args.quantize))
    if args.quantize:
        if args.format not in ("onnx", package.FORMAT):
            raise ConfigError(f"--quantize writes int8 ONNX or a model folder with its int8 program; --format "
                              f"{args.format} holds fp32 weights: use --format onnx or dir")  # fmt: skip
        fp32 = run_.model
        quantized = apply_quantize_options(run_, args).model
        run_.model = fp32
        if args.format == "onnx":
            result = export_quantized_onnx(fp32, quantized, out)
        else:
            result = export_package(run_, out, shape, quantized=quantized)
    elif args.format == package.FORMAT:
        result = export_package(run_, out, shape)
    else:
        result = export_model(run_.model, args.format, out, shape)
    status = "ok" if result.ok else f"MISMATCH (tolerance {result.tolerance:.2g})"
    print(f"wrote {result.path} ({args.format}{', int8 ' + args.quantize if args.quantize else ''}, "
          f"input {'x'.join(map(str, result.input_shape))})")  # fmt: skip
    print(f"parity with {result.compared_with}: max abs diff {result.max_abs_diff:.2e}, {status}")
    return 0 if result.ok else 1


def default_output(checkpoint: Path, fmt: str, quantize: str | None = None) -> Path:
    suffix = PACKAGE_SUFFIX if fmt == package.FORMAT else SUFFIXES[fmt]
    if quantize:
        suffix = f"-int8-{quantize}{suffix}"
    return checkpoint.with_name(checkpoint.stem + suffix)
