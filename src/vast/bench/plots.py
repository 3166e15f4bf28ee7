"""The report's figures: latency against GMACs (one point per model and input) and the scaling sweeps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vast.bench.runner import BenchReport


def plot_latency_vs_gmacs(report: BenchReport, path: str | Path) -> Path:
    """One point per model and input, named in the legend (labels written beside the points collide when
    models share a GMAC count); the dashed line is the latency at the machine's matmul rate
    (``GMACs / matmul GMAC/s``), a floor for dense models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    vast_colours = plt.get_cmap("Reds")
    peer_colours = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive")
    vast_rows = [r for r in report.results if r.model.startswith(("vast_", "ast_"))]
    peers = sorted({r.model for r in report.results} - {r.model for r in vast_rows})
    markers = "o^sDvP*X"
    for r in report.results:
        if r in vast_rows:
            i = vast_rows.index(r)
            colour, marker = vast_colours(0.45 + 0.5 * i / max(len(vast_rows) - 1, 1)), markers[i % len(markers)]
        else:
            i = peers.index(r.model)
            colour = peer_colours[i % len(peer_colours)]
            marker = "o" if r.input == report.results[0].input else "s"  # square: another input than row 1
        ax.scatter(r.gmacs, r.latency_ms, color=colour, marker=marker, s=60, zorder=3, edgecolors="black",
                   linewidths=0.5, label=f"{r.model} @ {r.input} ({r.latency_ms:.0f} ms)")  # fmt: skip
    gmacs = [r.gmacs for r in report.results]
    span = [min(gmacs) / 1.5, max(gmacs) * 1.5]
    ax.plot(span, [g / report.matmul_gmacs_per_s * 1e3 for g in span], "--", color="grey",
            label=f"at the matmul rate, {report.matmul_gmacs_per_s:.0f} GMAC/s")  # fmt: skip
    settings = report.settings
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("GMACs per clip (torch.utils.flop_counter)")
    ax.set_ylabel("latency at batch 1 (ms)")
    compiled = ", compiled" if settings.get("compile") else ""
    threads = settings.get("threads") or "default"
    title = f"{settings['device']} {settings['dtype']}, threads={threads}{compiled}; red: VAST, others: torchvision"
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_scaling(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Latency against input voxels (log-log) for each model and sweep; a slope of 1 is linear."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
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
    plt.close(fig)
    return Path(path)
