"""Writing videos with PyAV, and the files of a generated data set: the demo and study sets, benchmarks and
test fixtures use it."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from tqdm import tqdm


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    fps: int = 8,
    codec: str = "libx264",
    crf: int = 20,
    preset: str = "veryfast",
    gop: int | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> int:
    """Encode uint8 RGB frames ``(H, W, 3)`` (H and W even) as a yuv420p video; returns the frame count.

    ``crf``/``preset`` apply to libx264; ``gop`` sets the keyframe interval; ``options`` are passed
    to the encoder and ``container_options`` to the muxer (e.g. ``{"movflags": "+faststart"}``).
    The encoder runs on one thread, as callers parallelise over files, and libx264 output is
    deterministic: the same frames give the same file.
    """
    count = 0
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = _add_stream(container, codec, fps, frame.shape, crf, preset, gop, options)
            image = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(image))
            count += 1
        if stream is None:
            raise ValueError(f"no frames to write to {path}")
        container.mux(stream.encode(None))
    return count


def _add_stream(
    container: av.container.OutputContainer,
    codec: str,
    fps: int,
    shape: tuple[int, ...],
    crf: int,
    preset: str,
    gop: int | None,
    options: dict[str, str] | None,
) -> av.VideoStream:
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"frames must be (H, W, 3) RGB, got {shape}")
    stream = container.add_stream(codec, rate=fps)
    stream.height, stream.width = shape[0], shape[1]
    stream.pix_fmt = "yuv420p"
    settings = {"threads": "1"}
    if codec == "libx264":
        # With macroblock-tree rate control on, this libx264 build sometimes gives different bytes
        # for the same frames (measured on 64x64 clips); without it the output is reproducible.
        settings.update({"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"})
    if gop is not None:
        settings["g"] = str(gop)
    settings.update(options or {})
    stream.options = settings
    return stream


def run_writers(
    write_one: Callable[[Any], Any], jobs: Sequence[Any], workers: int, desc: str, progress: bool, chunksize: int = 16
) -> None:
    """``write_one(job)`` for every job, in ``workers`` processes (one thread each: the pool already
    uses every core), with a progress bar. ``write_one`` must be a module-level function (picklable)."""
    bar = tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress)
    try:
        if workers == 1:
            for job in jobs:
                write_one(job)
                bar.update()
        else:
            with multiprocessing.get_context().Pool(workers, torch.set_num_threads, (1,)) as pool:
                for _ in pool.imap_unordered(write_one, jobs, chunksize=chunksize):
                    bar.update()
    finally:
        bar.close()


def numbered_video(split: str, index: int) -> str:
    """Where a generated set keeps video ``index`` of ``split``, relative to its folder: ``train/00042.mp4``."""
    return f"{split}/{index:05d}.mp4"


def write_set_files(
    root: Path, name: str, class_names: Sequence[str], seed: int, counts: dict[str, int], num_frames: int,
    frame_size: int, fps: int, **extra: Any,
) -> dict[str, Path]:  # fmt: skip
    """The files of a generated set beside its videos: a list annotation per split (video ``i`` is of class
    ``i mod len(class_names)``), ``classes.txt`` and ``<name>.json`` (its settings, then ``extra``). The
    lists' paths, by split."""
    from vast.data.annotations import write_class_names

    lists = {}
    for split, count in counts.items():
        lists[split] = root / f"{split}.txt"
        lines = [f"{numbered_video(split, i)} {i % len(class_names)}\n" for i in range(count)]
        lists[split].write_text("".join(lines), encoding="utf-8")
    write_class_names(root / "classes.txt", class_names)
    settings = {"name": name, "seed": seed, **{f"num_{split}": count for split, count in counts.items()},
                "num_frames": num_frames, "frame_size": frame_size, "fps": fps, "class_names": list(class_names)}
    (root / f"{name}.json").write_text(json.dumps({**settings, **extra}, indent=2) + "\n", encoding="utf-8")
    return lists
