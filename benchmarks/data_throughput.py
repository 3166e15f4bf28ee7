"""Data-loading throughput: decoded + transformed clips per second through VideoDataset + DataLoader.

Two sources:
- the Moving-Digits demo set (16 x 64 x 64 clips by dense sampling, and 8 x 64 x 64 by TSN as the
  demo recipe reads them), made in a temporary folder unless --demo-dir points at one;
- a 10-second 320 x 240 H.264 video at 30 fps that the script writes itself (x264 defaults: a
  keyframe every 250 frames at most), read as 8 x 224 x 224 clips with TSN and with dense sampling.

Each with the training and the evaluation transform, and 0, 1 and 2 DataLoader workers. The first
batch of every run is not timed (worker start-up). "CPU ms/clip" (0 workers only) is the CPU time
the main process spent per clip: unlike clips/s it does not depend on other load on the machine.
Usage:

    python benchmarks/data_throughput.py [--demo-dir demo-data] [--workers 0 1 2] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from vast.data.annotations import Annotations, VideoRecord, load_annotations
from vast.data.dataset import VideoDataset, collate_videos
from vast.data.encoding import write_video
from vast.data.moving_digits import make_moving_digits
from vast.data.sampling import DenseSampler, TSNSampler
from vast.data.transforms import build_eval_transform, build_train_transform


def long_video_frames(seconds: int = 10, fps: int = 30, height: int = 240, width: int = 320):
    """Moving, textured frames (a drifting gradient, a moving square, sensor noise), so the encoder
    produces a realistic bit rate rather than near-empty frames."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[:height, :width]
    texture = rng.integers(0, 40, (height, width, 3), dtype=np.uint8)
    for t in range(seconds * fps):
        frame = np.empty((height, width, 3), np.uint8)
        frame[..., 0] = (xs + 3 * t) % 256
        frame[..., 1] = (ys + 2 * t) % 256
        frame[..., 2] = ((xs + ys) // 2 + t) % 256
        frame += texture
        x, y = (5 * t) % (width - 60), (3 * t) % (height - 60)
        frame[y : y + 60, x : x + 60] = (250, 240, 20)
        frame += rng.integers(0, 8, (height, width, 3), dtype=np.uint8)
        yield frame


def clips_per_second(dataset: VideoDataset, workers: int, batch_size: int, clips: int) -> tuple[float, float]:
    """Clips per second (wall clock), and CPU milliseconds per clip of this process (the whole cost
    when ``workers == 0``: a figure that does not depend on what else the machine runs)."""
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_videos)
    batches = iter(loader)
    next(batches)  # not timed: worker start-up and first decode
    done, started, cpu = 0, time.perf_counter(), time.process_time()
    for batch in batches:
        done += len(batch.labels)
        if done >= clips:
            break
    return done / (time.perf_counter() - started), 1000 * (time.process_time() - cpu) / done


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo-dir", type=Path, help="an existing Moving-Digits folder (default: make one)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--demo-clips", type=int, default=480, help="timed clips per demo run")
    parser.add_argument("--long-clips", type=int, default=64, help="timed clips per long-video run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        demo_dir = args.demo_dir
        if demo_dir is None:
            demo_dir = tmp_dir / "demo"
            made = make_moving_digits(demo_dir, num_train=512, num_val=16, progress=False)
            print(f"wrote a 512-video Moving-Digits set in {made.seconds:.1f} s")
        demo = load_annotations(demo_dir / "train.txt")

        long_path = tmp_dir / "long_320x240_10s.mp4"
        started = time.perf_counter()
        write_video(long_path, long_video_frames(), fps=30, preset="medium", crf=23)
        size_kb = long_path.stat().st_size / 1024
        print(
            f"wrote {long_path.name} (300 frames, {size_kb:.0f} KiB) in {time.perf_counter() - started:.1f} s"
        )
        long = Annotations([VideoRecord(long_path, 0)] * (args.long_clips + 2 * args.batch_size), ["one"])

        demo_tf = (build_train_transform(64, scale=(0.6, 1.0)), build_eval_transform(64, short_side=64))
        big_tf = (build_train_transform(224), build_eval_transform(224))
        big = "10s 320x240 -> 8x224x224"
        # (data, sampler name, annotations, timed clips, sampler factory, (train, eval) transforms)
        setups = [
            ("demo 16x64x64", "dense 16x1", demo, args.demo_clips, partial(DenseSampler, 16, 1), demo_tf),
            ("demo 8x64x64", "TSN 8", demo, args.demo_clips, partial(TSNSampler, 8), demo_tf),
            (big, "TSN 8", long, args.long_clips, partial(TSNSampler, 8), big_tf),
            (big, "dense 8x8", long, args.long_clips, partial(DenseSampler, 8, 8), big_tf),
        ]
        print(f"\ntorch threads in the main process: {torch.get_num_threads()}, cores: {os.cpu_count()}")
        header = f"{'data':<26} {'sampler':<11} {'transform':<9} {'workers':>7} {'clips/s':>8} {'ms/clip':>8}"
        print(f"{header} {'CPU ms/clip':>11}")
        for name, sampler_name, annotations, clips, make_sampler, transforms in setups:
            for mode, transform in zip(("train", "eval"), transforms):
                dataset = VideoDataset(annotations, make_sampler(training=mode == "train"), transform)
                for workers in args.workers:
                    torch.manual_seed(0)
                    rate, cpu_ms = clips_per_second(dataset, workers, args.batch_size, clips)
                    cpu = f"{cpu_ms:.1f}" if workers == 0 else "-"
                    row = f"{name:<26} {sampler_name:<11} {mode:<9} {workers:>7} {rate:>8.1f}"
                    print(f"{row} {1000 / rate:>8.1f} {cpu:>11}", flush=True)


if __name__ == "__main__":
    main()
