"""Calibrate the study set and recipe: does the data set separate models as it should?

Writes the study set (timed), then trains with the shipped ``study`` recipe:

- ``vast``: vast_nano as the recipe has it (should land between 70 and 92 % top-1);
- ``blind``: the same model without its temporal shift, blind to frame order (at most 55 %);
- ``single-frame``: the same model on one frame per clip (``data.num_frames=1``, under 35 %).

and prints a markdown table (final single-clip validation top-1, training time, load average before
and after each run, as other jobs on the machine inflate the time). ``docs/data.md`` records the
results::

    python benchmarks/calibrate_study_set.py --data study-data --out runs/calibrate --seeds 0 1
    python benchmarks/calibrate_study_set.py --models vast --seeds 2      # one model only
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from vast.data.study_set import make_study_set
from vast.engine.config import load_config
from vast.engine.train import train

MODELS = {
    "vast": [],
    "blind": ["model.options.temporal_shift=false"],
    "single-frame": ["data.num_frames=1"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("study-data"), help="study set folder (made if missing)")
    parser.add_argument("--out", type=Path, default=Path("runs/calibrate"), help="run folders and results.json")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    rows = []
    if not (args.data / "val.txt").is_file():
        load = os.getloadavg()[0]
        started = time.perf_counter()
        make_study_set(args.data, progress=False)
        rows.append(("data set (3200 + 800 videos)", "-", "-", f"{time.perf_counter() - started:.0f} s", f"{load:.1f}"))
    results = []
    for seed in args.seeds:
        for name in args.models:
            settings = [
                f"data.train={args.data / 'train.txt'}",
                f"data.val={args.data / 'val.txt'}",
                f"train.seed={seed}",
                f"train.output_dir={args.out / f'{name}-seed{seed}'}",
                *MODELS[name],
                *args.overrides,
            ]
            load = os.getloadavg()[0]
            result = train(load_config("study", settings), quiet=True)
            after = os.getloadavg()[0]
            top1 = result.history[-1]["top1"] if result.history else float("nan")
            results.append(dict(model=name, seed=seed, top1=top1, seconds=result.seconds, load=[load, after]))
            rows.append((name, str(seed), f"{top1:.1f} %", f"{result.seconds:.0f} s", f"{load:.1f} / {after:.1f}"))
            print(" | ".join(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n| model | seed | top-1 | time | load average before / after |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
