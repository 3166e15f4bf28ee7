"""What a run prints and writes: the result, comparison, scaling and compile tables (aligned text or
Markdown), and the report's JSON, CSV and PNG files."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vast.bench.plots import plot_latency_vs_gmacs, plot_scaling
from vast.bench.runner import RESULT_COLUMNS, BenchReport, BenchResult
from vast.bench.scaling import SCALING_COLUMNS
from vast.engine.tables import markdown_table

RESULT_HEADER = (
    "model",
    "input TxHxW",
    "params M",
    "GMACs",
    "latency ms",
    "GMAC/s",
    "% matmul",
    "clips/s (batch)",
    "infer MiB",
    "train MiB",
    "train MiB/GMAC",
    "shift %",
)
SCALING_HEADER = (
    "model", "axis", "T", "HxW", "GMACs", "latency ms", "x time", "x tokens", "growth", "infer MiB", "x mem"
)  # fmt: skip
COMPILE_HEADER = ("model", "input TxHxW", "eager ms", "compiled ms", "speedup", "max abs diff", "compile s")


# --------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def aligned_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    """Plain text: the first column left-aligned, the others right-aligned, two spaces apart, a dashed
    rule under the header."""
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    rule = fmt.format(*("-" * w for w in widths))
    return "\n".join([fmt.format(*header), rule] + [fmt.format(*line) for line in lines])


def _table(header: Sequence[str], lines: Sequence[Sequence[str]], markdown: bool) -> str:
    return markdown_table(header, lines) if markdown else aligned_table(header, lines)


def format_results(report: BenchReport, markdown: bool = False) -> str:
    """The result table (one row per model and input), plus the matmul reference rows."""
    lines = [_result_line(r) for r in report.results]
    size, gmacs = report.settings.get("matmul_size"), report.settings.get("matmul_gmacs")
    for name, rate in (report.settings.get("matmul_rates") or {"matmul": report.matmul_gmacs_per_s}).items():
        pct = 100.0 * rate / report.matmul_gmacs_per_s
        lines.append((f"{name} {size}^3", "-", "-", _fmt(gmacs), "-", _fmt(rate), _fmt(pct, 0), *["-"] * 5))
    return _table(RESULT_HEADER, lines, markdown)


def _result_line(r: BenchResult) -> tuple[str, ...]:
    tput = "-" if r.throughput_clips_s is None else f"{r.throughput_clips_s:.2f} ({r.throughput_batch})"
    return (
        r.model,
        r.input,
        _fmt(r.params_m),
        _fmt(r.gmacs, 2),
        _fmt(r.latency_ms, 0),
        _fmt(r.gmacs_per_s),
        _fmt(r.pct_matmul_peak, 0),
        tput,
        _fmt(r.infer_peak_mb, 0),
        _fmt(r.train_peak_mb, 0),
        _fmt(r.train_mb_per_gmac),
        _fmt(r.shift_pct),
    )


def format_comparison(report: BenchReport, reference: str = "swin3d_t") -> str:
    """Each VAST row against ``reference`` at the same input, as ratios of this run's figures (empty when
    the reference did not run): what a reader of the table would otherwise work out by hand."""
    rows = {(r.model, r.input): r for r in report.results}
    lines = []
    for r in report.results:
        ref = rows.get((reference, r.input))
        if ref is None or not r.model.startswith(("vast_", "ast_")):
            continue
        lines.append(f"{r.model} vs {reference} @ {r.input}: " + ", ".join(_ratios(r, ref)))
    return "\n".join(lines)


def _ratios(r: BenchResult, ref: BenchResult) -> list[str]:
    parts = [
        f"{r.gmacs / ref.gmacs:.2f}x the GMACs",
        f"{r.latency_ms / ref.latency_ms:.2f}x the latency",
        f"{r.gmacs_per_s / ref.gmacs_per_s:.2f}x the GMAC/s",
    ]
    if r.throughput_clips_s and ref.throughput_clips_s and r.throughput_batch == ref.throughput_batch:
        parts.append(f"{r.throughput_clips_s / ref.throughput_clips_s:.2f}x the clips/s")
    if r.train_peak_mb and ref.train_peak_mb:
        parts.append(f"{r.train_peak_mb / ref.train_peak_mb:.2f}x the training memory")
        parts.append(f"{r.train_mb_per_gmac / ref.train_mb_per_gmac:.2f}x per GMAC")
    return parts


def format_scaling(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    lines = [
        (
            r["model"],
            r["axis"],
            str(r["frames"]),
            f"{r['size']}",
            _fmt(r["gmacs"], 2),
            _fmt(r["latency_ms"], 0),
            _fmt(r["time_ratio"], 2),
            _fmt(r["token_ratio"], 2),
            _fmt(r["growth"], 2),
            _fmt(r["infer_peak_mb"], 0),
            _fmt(r["memory_ratio"], 2),
        )
        for r in rows
    ]
    return _table(SCALING_HEADER, lines, markdown)


def format_compile(rows: Sequence[dict[str, Any]], markdown: bool = False) -> str:
    lines = [
        (r["model"], r["input"], _fmt(r["eager_ms"], 0), _fmt(r["compiled_ms"], 0), _fmt(r["speedup"], 2),
         f"{r['max_abs_diff']:.1e}", _fmt(r["compile_s"], 0))
        for r in rows
    ]  # fmt: skip
    return _table(COMPILE_HEADER, lines, markdown)


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def write_report(report: BenchReport, out_dir: str | Path, stem: str = "bench") -> list[Path]:
    """``<stem>.json`` (everything), ``<stem>.csv`` (one row per model) and ``<stem>.png`` (latency
    against GMACs), plus ``scaling.csv`` / ``scaling.png`` when the report has a scaling sweep."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json"]
    paths[0].write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
    if report.results:
        paths.append(_write_csv(out / f"{stem}.csv", RESULT_COLUMNS, [r.row() for r in report.results]))
        paths.append(plot_latency_vs_gmacs(report, out / f"{stem}.png"))
    if report.scaling:
        paths.append(_write_csv(out / "scaling.csv", SCALING_COLUMNS, report.scaling))
        paths.append(plot_scaling(report.scaling, out / "scaling.png"))
    return paths


def _write_csv(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
    return path
