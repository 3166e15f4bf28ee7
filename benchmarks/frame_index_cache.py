"""Clips per second for 8-frame TSN clips, a new PyAVDecoder per clip (as a data set opens them), on
a 10 s 320x240 video encoded by the ffmpeg command line as Xvid AVI and H.264 AVI: this branch with
its FrameIndexCache, without it (max_entries=0), and main's decoder (``git show main:...``).

    PYTHONPATH=src python benchmarks/frame_index_cache.py [folder]
"""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vast.data import decoding
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


def main_decoding(folder: Path):
    source = subprocess.run(
        ["git", "show", "main:src/vast/data/decoding.py"], capture_output=True, text=True, check=True
    )
    file = folder / "main_decoding.py"
    file.write_text(source.stdout)
    spec = importlib.util.spec_from_file_location("main_decoding", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PyAVDecoder


def clips(decoder_class, path: Path, rng: np.random.Generator, count: int) -> tuple[float, list[float]]:
    """(wall seconds, CPU seconds per clip) for ``count`` clips."""
    sampler = TSNSampler(8, training=True)
    cpu = []
    start = time.perf_counter()
    for _ in range(count):
        began = time.process_time()
        with decoder_class(path) as video:
            video.get_frames(sampler.sample(video.num_frames, rng))
        cpu.append(time.process_time() - began)
    return time.perf_counter() - start, cpu


def run() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/idxbench")
    folder.mkdir(parents=True, exist_ok=True)
    main_decoder = main_decoding(folder)
    cache = decoding.FRAME_INDEX_CACHE
    print("| file | main | no cache | cache |")
    print("|---|---|---|---|")
    for name in ENCODINGS:
        path = make(folder, name)
        configs = {
            "main": (main_decoder, 0),
            "no cache": (decoding.PyAVDecoder, 0),
            "cache": (decoding.PyAVDecoder, 1024),
        }
        wall = dict.fromkeys(configs, 0.0)
        cpu: dict[str, list[float]] = {label: [] for label in configs}
        rng = np.random.default_rng(0)
        for _ in range(ROUNDS):  # the configurations take turns, so a busy spell hits them alike
            for label, (decoder_class, entries) in configs.items():
                cache.clear()
                cache.max_entries = entries
                decoder_class(path).close()  # the file in the page cache, the index built once
                seconds, times = clips(decoder_class, path, rng, CLIPS // ROUNDS)
                wall[label] += seconds
                cpu[label] += times
        results = {label: (len(cpu[label]) / wall[label], 1000 * float(np.median(cpu[label]))) for label in configs}
        cells = [f"{rate:.1f} clips/s ({ms:.1f} ms)" for rate, ms in results.values()]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    run()
