"""Hand timing, independent of vast.bench, to check its figures.

Times batch-1 forward passes of vast_tiny, vast_tiny with t_patch=2 fused for inference, and swin3d_t
at 1x3x8x224x224 with nothing but ``time.perf_counter`` around ``model(x)`` under
``torch.inference_mode`` (the models alternate; medians of the repeats), then prints them and their
latency ratios next to those of a ``vast bench --out`` JSON file if one is given. Usage::

    vast bench vast_tiny vast_tiny:t_patch=2,fused=True swin3d_t --threads 2 --malloc tuned --out bench-out
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 \
        python benchmarks/check_timing.py --threads 2 --json bench-out/bench.json

(``vast bench --malloc tuned`` sets these glibc malloc options itself, see vast.bench.allocator; the
environment variables give the hand timing the same allocator behaviour without any of our code.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torchvision

import vast


def main() -> None:
    parser = argparse.ArgumentParser(description="hand timing of vast_tiny and swin3d_t")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", type=Path, help="a vast bench --out JSON file to compare with")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, 8, 224, 224)
    models = {
        "vast_tiny": vast.create_model("vast_tiny").eval(),
        "vast_tiny:t_patch=2,fused=True": vast.create_model("vast_tiny", t_patch=2).eval().fuse_for_inference(),
        "swin3d_t": torchvision.models.video.swin3d_t(num_classes=400).eval(),
    }
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for repeat in range(args.repeats + 2):
            for name, model in models.items():
                start = time.perf_counter()
                model(x)
                if repeat >= 2:  # two warm-up passes
                    times[name].append(time.perf_counter() - start)
    bench = {}
    if args.json:
        rows = json.loads(args.json.read_text())["results"]
        bench = {r["model"]: r["latency_ms"] for r in rows if r["input"] == "8x224x224"}
    print("| model | hand timing ms (median, min-max) | vast bench ms |")
    print("|---|---|---|")
    for name, samples in times.items():
        ms = [t * 1e3 for t in samples]
        reference = f"{bench[name]:.0f}" if name in bench else "-"
        print(f"| {name} | {statistics.median(ms):.0f} ({min(ms):.0f}-{max(ms):.0f}) | {reference} |")
    swin = statistics.median(times["swin3d_t"])
    for name in list(models)[:2]:
        print(f"\n{name} / swin3d_t latency, hand timing: {statistics.median(times[name]) / swin:.2f}", end="")
        if name in bench and "swin3d_t" in bench:
            print(f"; vast bench: {bench[name] / bench['swin3d_t']:.2f}", end="")
    print()


if __name__ == "__main__":
    main()
