"""The report's figures: latency against GMACs (one point per model and input) and the scaling sweeps.

They are drawn on a :class:`matplotlib.figure.Figure` of their own, not through ``pyplot``: writing them
neither selects matplotlib's backend for the process nor leaves figures in pyplot's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from vast.bench.runner import BenchReport, BenchResult

PEER_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive")
VAST_MARKERS = "o^sDvP*X"


def plot_latency_vs_gmacs(report: BenchReport, path: str | Path) -> Path:
    """One point per model and input, named in the legend (labels written beside the points collide when
    models share a GMAC count); the dashed line is the latency at the machine's matmul rate
    (``GMACs / matmul GMAC/s``), a floor for dense models."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 6))
    ax = fig.subplots()
    for r in report.results:
        colour, marker = _point_style(r, report.results)
        ax.scatter(r.gmacs, r.latency_ms, color=colour, marker=marker, s=60, zorder=3, edgecolors="black",
                   linewidths=0.5, label=f"{r.model} @ {r.input} ({r.latency_ms:.0f} ms)")  # fmt: skip
    gmacs = [r.gmacs for r in report.results]
    span = [min(gmacs) / 1.5, max(gmacs) * 1.5]
    ax.plot(span, [g / report.matmul_gmacs_per_s * 1e3 for g in span], "--", color="grey",
            label=f"at the matmul rate, {report.matmul_gmacs_per_s:.0f} GMAC/s")  # fmt: skip
    _log_axes(ax)
    ax.set_xlabel("GMACs per clip (torch.utils.flop_counter)")
    ax.set_ylabel("latency at batch 1 (ms)")
    ax.set_title(_title(report.settings), fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)


def _point_style(r: BenchResult, results: Sequence[BenchResult]) -> tuple[Any, str]:
    """VAST rows in shades of red with a marker each; a peer in its own colour, a circle at the first
    row's input and a square at another."""
    import matplotlib

    vast_rows = [row for row in results if row.model.startswith(("vast_", "ast_"))]
    if r in vast_rows:
        i = vast_rows.index(r)
        shade = matplotlib.colormaps["Reds"](0.45 + 0.5 * i / max(len(vast_rows) - 1, 1))
        return shade, VAST_MARKERS[i % len(VAST_MARKERS)]
    peers = sorted({row.model for row in results} - {row.model for row in vast_rows})
    colour = PEER_COLOURS[peers.index(r.model) % len(PEER_COLOURS)]
    return colour, "o" if r.input == results[0].input else "s"


def _log_axes(ax: Axes) -> None:
    """Both axes logarithmic, with ticks at 1, 2 and 5 of each decade written as plain numbers."""
    from matplotlib import ticker

    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ticker.ScalarFormatter())
        axis.set_minor_formatter(ticker.NullFormatter())


def _title(settings: dict[str, Any]) -> str:
    compiled = ", compiled" if settings.get("compile") else ""
    threads = settings.get("threads") or "default"
    return f"{settings['device']} {settings['dtype']}, threads={threads}{compiled}; red: VAST, others: torchvision"


def plot_scaling(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Latency against input voxels (log-log) for each model and sweep; a slope of 1 is linear."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["axis"]), []).append(row)
    for (model, axis), group in groups.items():
        ax.plot([g["tokens"] for g in group], [g["latency_ms"] for g in group], "o-", label=f"{model} ({axis})")
    first = rows[0]
    xs = sorted({r["tokens"] for r in rows})
    ax.plot(xs, [first["latency_ms"] * x / first["tokens"] for x in xs], ":", color="grey", label="linear")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input voxels T x H x W")
    ax.set_ylabel("latency at batch 1 (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
