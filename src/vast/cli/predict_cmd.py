"""`vast predict CHECKPOINT VIDEO...`: the top-k classes of each video."""

from __future__ import annotations

import argparse
import json

from vast.cli.quantize_options import add_quantize_options, apply_quantize_options
from vast.engine.evaluate import load_run, parse_views, predict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="top-k classes of videos with a trained checkpoint")
    parser.add_argument("checkpoint", help="best.pt / last.pt of a run, or the run folder")
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--views", default="1x1", help="CLIPSxCROPS averaged per video (default 1x1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--fuse", action="store_true",
        help="fuse the model for inference (BatchNorm folded, oneDNN on the CPU): faster, same outputs up to rounding",
    )
    add_quantize_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    clips, crops = parse_views(args.views)
    loaded = load_run(args.checkpoint, device=args.device, fuse=args.fuse, compile=args.compile)
    run_ = apply_quantize_options(loaded, args)
    predictions = predict(run_, args.videos, top_k=args.top_k, clips=clips, crops=crops)
    if args.json:
        payload = [{"video": p.video, "top": [{"class": c, "probability": s} for c, s in p.top]} for p in predictions]
        print(json.dumps(payload, indent=2))
        return 0
    for p in predictions:
        print(p.video)
        for rank, (name, prob) in enumerate(p.top, 1):
            print(f"  {rank}. {name:<24} {100 * prob:6.2f} %")
    return 0
