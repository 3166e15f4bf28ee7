"""What the decoded-video cache (``data.cache_mb``) saves: training items per second of the study set,
read as the study recipe reads them (8 TSN frames at 32 x 32, in the training process), with and
without the cache, side by side in one run.

Epoch 1 fills the cache (every frame of each video decoded once); epochs 2 and 3 read from memory.
"ms/item" is the main process's CPU time per item, which other load on the machine does not change.
Usage:

    python benchmarks/decoded_cache.py [--data study-data] [--items 1600] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from vast.bench.machine import machine_info
from vast.data.cache import shared_cache
from vast.data.study_set import make_study_set
from vast.engine.config import load_config
from vast.engine.data import build_train_dataset


def epoch_cost(dataset, epoch: int, items: int) -> tuple[float, float]:
    """(items per second, CPU ms per item) of reading ``items`` training items of ``epoch``."""
    dataset.set_epoch(epoch)
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(items):
        dataset[index]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return items / wall, 1e3 * cpu / items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("study-data"), help="study set folder (made if missing)")
    parser.add_argument("--items", type=int, default=1600, help="items read per epoch")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (no cache, cache), alternated")
    args = parser.parse_args()
    if not (args.data / "train.txt").is_file():
        make_study_set(args.data)
    print(machine_info(torch.device("cpu")))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| round | cache | epoch | items/s | CPU ms/item |")
    print("|---:|---|---:|---:|---:|")
    for round_ in range(args.repeats):
        for cache_mb in (0, 512):
            if shared_cache(512) is not None:
                shared_cache(512).clear()  # every round starts cold
            files = [f"data.train={args.data / 'train.txt'}", f"data.val={args.data / 'val.txt'}"]
            config = load_config("study", [*files, f"data.cache_mb={cache_mb}"])
            dataset = build_train_dataset(config.data, seed=round_)
            for epoch in range(3):
                rate, cpu_ms = epoch_cost(dataset, epoch, args.items)
                label = "on" if cache_mb else "off"
                print(f"| {round_} | {label} | {epoch + 1} | {rate:.0f} | {cpu_ms:.2f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
