"""`vast eval CHECKPOINT [--views CLIPSxCROPS]`: multi-view top-1 / top-5 with the protocol stated."""

from __future__ import annotations

import argparse
from pathlib import Path

from vast.cli.quantize_options import add_quantize_options, apply_quantize_options
from vast.data.annotations import Annotations
from vast.engine.evaluate import (
    LoadedRun,
    annotations_for_eval,
    evaluate,
    load_run,
    parse_views,
    write_eval_report,
)
from vast.errors import ConfigError
from vast.streaming.early import early_recognition, write_early_recognition
from vast.streaming.recognizer import frame_every


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="multi-view evaluation of a trained checkpoint")
    parser.add_argument("checkpoint", help="best.pt / last.pt of a run, or the run folder")
    parser.add_argument("--views", default="1x1", help="CLIPSxCROPS, e.g. 1x1, 4x3, 10x3 (default 1x1)")
    parser.add_argument("--data", help="annotations to evaluate on (default: the run's validation set)")
    parser.add_argument("--root", help="folder the annotation paths are relative to")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ema", action="store_true", help="evaluate the EMA weights")
    parser.add_argument(
        "--fuse", action="store_true",
        help="fuse the model for inference (BatchNorm folded, oneDNN on the CPU): faster, same outputs up to rounding",
    )
    parser.add_argument(
        "--online", action="store_true",
        help="early recognition: top-1 after 25, 50, 75 and 100 %% of each video, read as a stream would read it",
    )
    parser.add_argument("--every", type=int, help="--online: take every N-th frame (default: the run's stride)")
    parser.add_argument("--out", type=Path, help="folder for the JSON report and confusion matrix (default: the run's)")
    add_quantize_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.online and args.quantize:
        raise ConfigError("--online runs the model on prefixes of every length, and an int8 model takes one "
                          "clip shape: drop --quantize")  # fmt: skip
    clips, crops = parse_views(args.views)
    loaded = load_run(args.checkpoint, device=args.device, ema=args.ema, fuse=args.fuse, compile=args.compile)
    run_ = apply_quantize_options(loaded, args)
    annotations = annotations_for_eval(run_, args.data, args.root)
    if args.online:
        return _run_online(run_, annotations, args)
    result = evaluate(run_, annotations, clips=clips, crops=crops, batch_size=args.batch_size, workers=args.workers)
    out_dir = args.out or run_.checkpoint_path.parent
    json_path, png = write_eval_report(result, run_.class_names, out_dir)
    print(f"model     {run_.config.model.name} ({run_.checkpoint_path}, {run_.weights} weights)")
    print(f"form      {result.form_detail}")
    print(f"protocol  {result.protocol}")
    print(f"videos    {result.videos} evaluated, {result.missing} missing (broken)")
    print(f"top-1     {result.top1:.2f} %")
    print(f"top-5     {result.top5:.2f} %")
    width = max(len(name) for name in run_.class_names)
    print("per class:")
    for name, acc in result.per_class.items():
        print(f"  {name:<{width}}  {acc:6.2f} %")
    print(f"wrote {json_path} and {png}")
    return 0


def _run_online(run_: LoadedRun, annotations: Annotations, args: argparse.Namespace) -> int:
    result = early_recognition(run_, annotations, frame_every(run_.config, args.every))
    json_path, png = write_early_recognition(result, args.out or run_.checkpoint_path.parent)
    print(f"model     {run_.config.model.name} ({run_.checkpoint_path}, {run_.weights} weights)")
    print(f"protocol  {result.protocol}")
    print(f"videos    {result.videos} evaluated, {result.missing} missing (broken or too short)")
    for fraction, top1 in zip(result.fractions, result.top1):
        print(f"top-1 after {100 * fraction:3.0f} % of each video: {top1:6.2f} %")
    print(f"wrote {json_path} and {png}")
    return 0
