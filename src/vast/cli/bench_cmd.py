"""`vast bench`: latency, throughput, memory, GMACs and achieved GMAC/s, side by side with torchvision."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # vast.bench (torch, torchvision) is imported when the command runs, not for --help
    from vast.bench import BenchReport, BenchSettings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="side-by-side latency, throughput, memory, GMACs and GMAC/s (optionally vs torchvision video models)",
        description=(
            "Measures, in one process with the same input, dtype and threads: params, GMACs "
            "(torch.utils.flop_counter), batch-1 latency (median of interleaved repeats), throughput at a "
            "larger batch, peak memory of inference and of one training step, and achieved GMAC/s as a "
            "share of a plain matmul's rate. MODEL may carry VAST options: vast_tiny:t_patch=2."
        ),
    )
    parser.add_argument(
        "models", nargs="*", metavar="MODEL",
        help="default: vast_tiny, vast_tiny:fused=True (fuse_for_inference), vast_tiny:t_patch=2,fused=True",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="add torchvision swin3d_t, mvit_v2_s, r2plus1d_18, s3d at the common input and at their weights' input",
    )
    parser.add_argument("--scaling", action="store_true", help="sweep frames (4-32) and size (112-320) instead")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 repeats, common input only, no training step: under a minute on 2 cores (with --peers)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--dtype", default="fp32", help="fp32 or bf16 (default fp32)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads for the run (default: torch's, untouched)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models (inductor, frozen weights)")
    parser.add_argument("--channels-last", action="store_true", help="NDHWC input and Conv3d weights")
    parser.add_argument("--blas", action="store_true",
                        help="fused VAST rows with projections on F.linear (the BLAS), not oneDNN")  # fmt: skip
    parser.add_argument("--frames", type=int, default=8, help="frames of the common input (default 8)")
    parser.add_argument("--size", type=int, default=224, help="height and width of the common input (default 224)")
    parser.add_argument("--batch", type=int, default=4, help="throughput batch (default 4; 1 skips throughput)")
    parser.add_argument("--repeats", type=int, help="timed passes per model (default 5, quick 3)")
    parser.add_argument("--warmup", type=int, help="untimed passes per model first (default 2, quick 1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step memory")
    parser.add_argument(
        "--malloc", choices=("default", "tuned"), default="default",
        help="glibc malloc: as the process has it (default), or tuned for the run to keep large freed blocks "
        "for reuse instead of faulting in fresh pages on every pass (opt-in: a process-wide setting)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write bench.json, bench.csv, bench.png (and scaling.*) here")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vast import bench

    settings = _settings(args)
    bench.parse_device(settings.device)  # bad values fail before any model is built
    if args.out is not None:  # before minutes of measuring, not after
        _make_out_dir(args.out)
    bench.parse_dtype(settings.dtype)
    shape = (1, 3, args.frames, args.size, args.size)
    with bench.tuned_malloc(args.malloc == "tuned"):
        report = _scaling(args, settings, shape) if args.scaling else _side_by_side(args, settings, shape)
    _print_context(report)
    if args.out:
        for path in bench.write_report(report, args.out, stem="scaling" if args.scaling else "bench"):
            print(f"wrote {path}")
    return 0


def _settings(args: argparse.Namespace) -> BenchSettings:
    """The command line as bench settings (``--quick``: fewer passes, a smaller matmul, no training step)."""
    from vast.bench import BenchSettings
    from vast.errors import ConfigError

    for flag in ("frames", "size", "batch", "repeats"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ConfigError(f"--{flag} must be a positive integer, got {value}")
    if args.warmup is not None and args.warmup < 0:
        raise ConfigError(f"--warmup must be >= 0, got {args.warmup}")
    settings = BenchSettings(
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
        compile=args.compile,
        channels_last=args.channels_last,
        onednn=not args.blas,
        throughput_batch=args.batch,
        memory=not args.no_memory,
        train_memory=not args.no_train,
        progress=not args.quiet,
    )
    if args.quick:
        settings.warmup, settings.repeats, settings.row_budget_s = 1, 3, 3.0
        settings.throughput_batch, settings.throughput_repeats = min(args.batch, 2), 1
        settings.matmul_size, settings.train_memory = 2048, False
    settings.repeats = args.repeats or settings.repeats
    settings.warmup = settings.warmup if args.warmup is None else args.warmup
    return settings


def _make_out_dir(out: Path) -> None:
    from vast.errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the --out folder {out}: {error.strerror}") from None


def _side_by_side(args: argparse.Namespace, settings: BenchSettings, shape: tuple[int, ...]) -> BenchReport:
    """The result table, the rows that cannot run here, and the VAST rows' ratios to swin3d_t."""
    from vast import bench

    specs = bench.default_specs(args.models, peers=args.peers, shape=shape, quick=args.quick)
    if args.blas:
        specs = [bench.on_blas(spec) for spec in specs]
    report = bench.run_benchmark(specs, settings)
    print(bench.format_results(report, markdown=args.markdown))
    for key, reason in report.skipped.items():
        print(f"skipped {key}: cannot run on {settings.device} {settings.dtype} here ({reason})")
    comparison = bench.format_comparison(report)
    if comparison:
        print("\n" + comparison)
    return report


def _scaling(args: argparse.Namespace, settings: BenchSettings, shape: tuple[int, ...]) -> BenchReport:
    from vast import bench

    models = list(args.models or ["vast_tiny"])
    if args.peers and "swin3d_t" not in models:
        models.append("swin3d_t")
    frames, sizes = bench.SCALING_FRAMES, bench.SCALING_SIZES
    if args.quick:
        frames, sizes = frames[:3], sizes[:3]
    points = bench.scaling_specs(models, frames, sizes, base=shape)
    if args.blas:
        points = [(label, bench.on_blas(spec)) for label, spec in points]
    rows = bench.run_scaling(points, settings)
    print(bench.format_scaling(rows, markdown=args.markdown))
    print("\ngrowth = (time ratio) / (token ratio) from the previous point of the sweep; 1.00 is linear in tokens.")
    device = bench.parse_device(settings.device)
    return bench.BenchReport([], float("nan"), vars(settings).copy(), bench.machine_info(device), rows)


def _print_context(report: BenchReport) -> None:
    s, m = report.settings, report.machine
    where = m.get("gpu") or m.get("cpu")
    print(
        f"\n{s['device']} ({where}, {m.get('cpu_count')} CPUs), {s['dtype']}, threads="
        f"{s.get('threads') or 'torch default'}{', torch.compile' if s.get('compile') else ''}"
        f"{', channels-last' if s.get('channels_last') else ''}"
        f"{'' if s.get('onednn', True) else ', fused VAST on F.linear'}"
        f"; torch {m['torch']}, torchvision {m['torchvision']}"
    )
    if report.results:
        print(
            "latency: batch 1, median of interleaved repeats; GMACs: multiply-adds (torch.utils.flop_counter); "
            "memory: peak tensor bytes incl. weights (CPU: profiler allocation events)"
        )
