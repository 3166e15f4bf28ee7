"""VAST against torchvision's video models: the tables of docs/benchmarks.md, printed as Markdown.

Runs, in this order and each in one process-wide setting (device, dtype, threads):

1. the side-by-side table (``vast bench --peers``): vast_tiny eager and fused, vast_tiny with
   t_patch=2 (the equal-compute comparison), swin3d_t, mvit_v2_s, r2plus1d_18, s3d;
2. the issue's targets, as ratios of rows of that one run;
3. the scaling sweep over frames and resolution (vast_tiny and swin3d_t);
4. torch.compile against eager (vast_tiny, plain and fused).

Usage::

    python benchmarks/bench_models.py [--threads 2] [--quick] [--out bench-out] [--skip scaling compile]

The measuring code lives in :mod:`vast.bench`; this script only chooses rows and prints. It opts in to
the tuned glibc malloc (``vast bench --malloc tuned``, :func:`vast.bench.tuned_malloc`) for the whole run,
as the tables of docs/benchmarks.md were measured. Run it on a quiet machine: other processes' load slows
multi-threaded runs unevenly.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vast import bench

VAST_ROWS = ("vast_tiny", "vast_tiny:fused=True", "vast_tiny:t_patch=2", "vast_tiny:t_patch=2,fused=True")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--quick", action="store_true", help="common input only, fewer repeats")
    parser.add_argument("--skip", nargs="*", default=[], choices=("peers", "scaling", "compile"))
    parser.add_argument("--out", type=Path, help="write the JSON/CSV/PNG files here")
    args = parser.parse_args()

    settings = bench.BenchSettings(device=args.device, dtype=args.dtype, threads=args.threads)
    if args.quick:
        settings.warmup, settings.repeats, settings.throughput_batch, settings.matmul_size = 1, 3, 2, 2048
    started = time.perf_counter()
    with bench.tuned_malloc():  # opted in: glibc keeps large freed blocks for reuse during the run
        specs = bench.default_specs(VAST_ROWS, peers="peers" not in args.skip, quick=args.quick)
        report = bench.run_benchmark(specs, settings)
        print("## Side by side\n")
        print(bench.format_results(report, markdown=True))
        print("\n## Targets (ratios within this run)\n")
        print(format_targets(report))
        if "scaling" not in args.skip:
            models = ["vast_tiny"] if "peers" in args.skip else ["vast_tiny", "swin3d_t"]
            report.scaling = bench.run_scaling(bench.scaling_specs(models), settings)
            print("\n## Scaling (growth = time ratio / token ratio; 1.00 is linear)\n")
            print(bench.format_scaling(report.scaling, markdown=True))
        if "compile" not in args.skip:
            parsed = map(bench.parse_model_arg, VAST_ROWS[:2])
            compile_specs = [bench.ModelSpec(name, bench.COMMON_INPUT, options) for name, options in parsed]
            rows = bench.run_compile_comparison(compile_specs, settings)
            print("\n## torch.compile (inductor, frozen weights) against eager\n")
            print(bench.format_compile(rows, markdown=True))
    machine = report.machine
    print(f"\n{machine['cpu']}, {machine['cpu_count']} CPUs, threads={args.threads or 'default'}, "
          f"{args.dtype}, torch {machine['torch']}; {time.perf_counter() - started:.0f} s")  # fmt: skip
    if args.out:
        for path in bench.write_report(report, args.out):
            print(f"wrote {path}")


def format_targets(report: bench.BenchReport) -> str:
    """The issue's targets as measured ratios (rows missing from the run are skipped)."""
    rows = {(r.model, r.input): r for r in report.results}
    common = "x".join(str(d) for d in bench.COMMON_INPUT[2:])
    swin = rows.get(("swin3d_t", common))
    lines = ["| target | measured | met |", "|---|---|---|"]

    def add(name: str, value: float, text: str, ok: bool) -> None:
        lines.append(f"| {name} | {text.format(value)} | {'yes' if ok else 'no'} |")

    for label in ("vast_tiny", "vast_tiny:fused=True"):
        row = rows.get((label, common))
        if row is None:
            continue
        add(f"{label}: % of the matmul rate >= 55", row.pct_matmul_peak, "{:.0f} %", row.pct_matmul_peak >= 55)
        if swin is not None:
            ratio = row.gmacs_per_s / swin.gmacs_per_s
            add(f"{label}: GMAC/s >= 2.0x swin3d_t's", ratio, "{:.2f}x", ratio >= 2.0)
        if row.shift_pct is not None:
            add(f"{label}: shift <= 3 % of the forward", row.shift_pct, "{:.1f} %", row.shift_pct <= 3.0)
    if swin is not None:
        for label in ("vast_tiny:t_patch=2", "vast_tiny:t_patch=2,fused=True"):
            row = rows.get((label, common))
            if row is not None:
                ratio = row.latency_ms / swin.latency_ms
                add(f"{label}: latency <= 0.6x swin3d_t's", ratio, "{:.2f}x", ratio <= 0.6)
        vast = rows.get(("vast_tiny", common))
        if vast is not None and vast.train_peak_mb and swin.train_peak_mb:
            per_gmac = vast.train_mb_per_gmac / swin.train_mb_per_gmac
            add("vast_tiny: training MiB/GMAC <= 0.5x swin3d_t's", per_gmac, "{:.2f}x", per_gmac <= 0.5)
            absolute = vast.train_peak_mb / swin.train_peak_mb
            add("vast_tiny: training MiB <= swin3d_t's", absolute, "{:.2f}x", absolute <= 1.0)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
