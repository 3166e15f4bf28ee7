"""`vast stream CHECKPOINT SOURCE`: online recognition of a file, a piped stream, a URL or a camera."""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import ExitStack

import torch
from tqdm import tqdm

from vast.cli.quantize_options import add_quantize_options
from vast.engine.evaluate import LoadedRun, load_run
from vast.engine.quantization import calibration_for
from vast.errors import ConfigError
from vast.streaming.overlay import OverlayWriter, plot_timeline, timeline_path
from vast.streaming.quantize import quantize_streaming_step
from vast.streaming.recognizer import OnlineRecognizer, StreamUpdate, frame_every
from vast.streaming.source import FrameSource


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stream", help="online recognition with a causal VAST: a file, - (stdin), an rtsp:// URL or a camera"
    )
    parser.add_argument("checkpoint", help="best.pt / last.pt of a causal run, or the run folder")
    parser.add_argument("source", help="a video file, - for a stream on stdin, an rtsp:// URL or /dev/video0")
    parser.add_argument(
        "--every", type=int, help="take every N-th frame (default: the run's dense sampling stride)"
    )
    parser.add_argument("--window", type=int, help="average the last K steps instead of the whole stream")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON object per step on stdout")
    parser.add_argument("--overlay", metavar="OUT.mp4", help="write the video with the top labels drawn on it, "
                        "and OUT.timeline.png")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_quantize_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    run_ = load_run(args.checkpoint, device=args.device)
    core = _int8_step(run_, args) if args.quantize else None
    recognizer = OnlineRecognizer(run_, frame_every(run_.config, args.every), window=args.window, core=core)
    updates: list[StreamUpdate] = []
    started = time.perf_counter()
    with ExitStack() as stack:
        source = stack.enter_context(FrameSource(args.source))
        overlay = None
        if args.overlay:
            overlay = stack.enter_context(OverlayWriter(args.overlay, source.fps, run_.class_names))
        bar = stack.enter_context(tqdm(
            total=source.frame_count, unit="frame", desc="stream", disable=args.quiet or source.live, file=sys.stderr
        ))  # fmt: skip
        for frame in source:
            update = recognizer.push(frame)
            if update is not None:
                updates.append(update)
                _report(update, run_.class_names, args, bar)
            if overlay is not None:
                overlay.write(frame.rgb, updates[-1] if updates else None)
            bar.update(1)
    _summarise(updates, run_.class_names, time.perf_counter() - started, args)
    return 0


def _int8_step(run_: LoadedRun, args: argparse.Namespace) -> torch.nn.Module:
    """The run's streaming step in int8; static: calibrated on training clips, each fed as a stream."""
    if args.window is not None:
        raise ConfigError("--window averages the steps itself, and an int8 step pools the whole stream: "
                          "drop --window or --quantize")  # fmt: skip
    frame_shape = (1, 3, run_.model.t_patch, run_.config.data.crop_size, run_.config.data.crop_size)
    batches = calibration_for(run_, args.quantize, args.calibration_clips, args.calibration)
    calibration = None if batches is None else [clip for batch in batches for clip in batch.split(1)]  # a stream each
    return quantize_streaming_step(run_.model, args.quantize, frame_shape, calibration, compile=args.compile)


def _report(update: StreamUpdate, class_names: list[str], args: argparse.Namespace, bar: tqdm) -> None:
    top = update.top(class_names, args.top_k)
    if args.json:
        record = {"step": update.step, "frame": update.frame, "time": round(update.time, 4),
                  "top": [{"class": name, "probability": round(p, 6)} for name, p in top]}  # fmt: skip
        bar.write(json.dumps(record), file=sys.stdout)
        return
    labels = "  ".join(f"{name} {100 * p:5.1f} %" for name, p in top)
    bar.write(f"{update.time:8.2f} s  frame {update.frame:>6}  {labels}", file=sys.stdout)


def _summarise(updates: list[StreamUpdate], class_names: list[str], seconds: float, args: argparse.Namespace) -> None:
    if args.overlay:
        png = plot_timeline(updates, class_names, timeline_path(args.overlay))
        print(f"wrote {args.overlay} and {png}", file=sys.stderr)
    if not updates:
        print("no frames: the source ended before the first step", file=sys.stderr)
        return
    (name, prob), = updates[-1].top(class_names, 1)
    print(f"{len(updates)} steps in {seconds:.1f} s; at the end: {name} {100 * prob:.1f} %", file=sys.stderr)
