"""Clips per second for 8-frame TSN clips, a new PyAVDecoder per clip (as a data set opens them), on
a 10 s 320x240 video encoded by the ffmpeg command line as Xvid AVI and H.264 AVI, files indexed by
decoding: this tree's decoder with the index kept nowhere (a data set's first epoch), kept on disk
only (later epochs: the process's memory no longer holds it), kept in memory, and the decoder of a
git revision (``git show REV:...``; default ee831f1, the decoder before frame-exact indexing).

    PYTHONPATH=src python benchmarks/frame_index_cache.py [folder] [revision]
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from revision_decoder import revision_pyav_decoder
from vast.bench.machine import machine_info
from vast.data.decoding import FRAME_INDEX_CACHE, PyAVDecoder
from vast.data.sampling import TSNSampler

ENCODINGS = {
    "xvid.avi": ["-c:v", "libxvid", "-bf", "2", "-g", "30"],
    "h264.avi": ["-c:v", "libx264", "-bf", "2", "-g", "30", "-threads", "1"],
}
CLIPS = 80
ROUNDS = 4


def make(folder: Path, name: str) -> Path:
    path = folder / name
    if not path.exists():
        source = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "10"]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *source, *ENCODINGS[name], str(path)], check=True)
    return path


def revision_decoder(folder: Path, revision: str):
    return revision_pyav_decoder(revision, folder)


def kept(memory: bool, store: Path | None):
    """This tree's decoder with the index kept in memory (or not) and on disk in ``store`` (or not)."""

    def open_video(path: Path) -> PyAVDecoder:
        if not memory:
            FRAME_INDEX_CACHE.clear()
        FRAME_INDEX_CACHE.folder = store
        return PyAVDecoder(path)

    return open_video


def clips(opener, path: Path, rng: np.random.Generator, count: int) -> tuple[float, list[float]]:
    """(wall seconds, CPU seconds per clip) for ``count`` clips."""
    sampler = TSNSampler(8, training=True)
    cpu = []
    start = time.perf_counter()
    for _ in range(count):
        began = time.process_time()
        with opener(path) as video:
            video.get_frames(sampler.sample(video.num_frames, rng)[0])
        cpu.append(time.process_time() - began)
    return time.perf_counter() - start, cpu


def run() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "idxbench")
    revision = sys.argv[2] if len(sys.argv) > 2 else "ee831f1"
    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "frame-index"
    configs = {
        revision: revision_decoder(folder, revision),
        "kept nowhere (first epoch)": kept(memory=False, store=None),
        "kept on disk (later epochs)": kept(memory=False, store=store),
        "kept in memory": kept(memory=True, store=store),
    }
    print(f"Machine: {machine_info(torch.device('cpu'))}\n")
    print("| file | " + " | ".join(configs) + " |")
    print("|---" * (len(configs) + 1) + "|")
    for name in ENCODINGS:
        path = make(folder, name)
        wall = dict.fromkeys(configs, 0.0)
        cpu: dict[str, list[float]] = {label: [] for label in configs}
        for opener in configs.values():  # the file in the page cache, the index stored, untimed
            clips(opener, path, np.random.default_rng(0), 1)
        for number in range(ROUNDS):  # the configurations take turns, so a busy spell hits them alike
            for label, opener in configs.items():
                seconds, times = clips(opener, path, np.random.default_rng(number), CLIPS // ROUNDS)
                wall[label] += seconds
                cpu[label] += times
        cells = [f"{len(cpu[k]) / wall[k]:.1f} clips/s ({1000 * float(np.median(cpu[k])):.1f} ms)" for k in configs]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    run()
