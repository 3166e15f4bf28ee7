"""The study's figures, drawn on matplotlib Figures of their own (no pyplot state, no backend change):

* top-1 against GMACs, the layout of the paper's figure 1: one curve per model family through its
  compute points, the seed spread as error bars;
* top-1 against training memory, the same points;
* the ablations: one bar per configuration of each ablation group, the spread as error bars;
* convergence: top-1 against optimiser steps, one line per label of each convergence group, the
  seed spread as a band.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = ("tab:red", "tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:cyan")


def _families(summary: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The attention-claim rows by label (one family per label, its compute points in plan order)."""
    families: dict[str, list[dict[str, Any]]] = {}
    for row in summary:
        if row["claim"] == "attention":
            families.setdefault(row["label"], []).append(row)
    return families


def _chance(summary: list[dict[str, Any]]) -> float | None:
    """Top-1 of guessing, when every row has the same number of classes."""
    classes = {row.get("num_classes") for row in summary}
    return 100.0 / classes.pop() if len(classes) == 1 and None not in classes else None


def _log_x(ax: Any, ticks: list[float], labels: list[str]) -> None:
    """A log x axis labelled at ``ticks`` only."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(ticks, labels)
    ax.xaxis.set_minor_formatter(NullFormatter())


def _finish(fig: Any, ax: Any, summary: list[dict[str, Any]], x_label: str, path: Path) -> Path:
    """The chance line, the axis labels, grid and legend of a top-1 figure; saved to ``path``."""
    chance = _chance(summary)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label=f"chance ({chance:.1f} %)")
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 % (single clip, mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_top1_against(summary: list[dict[str, Any]], x_key: str, x_label: str, path: Path) -> Path | None:
    """Top-1 against ``x_key`` (``gmacs`` or ``train_memory_mb``) for the attention comparison."""
    families = _families(summary)
    if not families:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    for (label, rows), colour in zip(families.items(), COLOURS * 4):
        xs, ys, errs = [r[x_key] for r in rows], [r["top1"] for r in rows], [r["top1_std"] for r in rows]
        ax.errorbar(xs, ys, yerr=errs, color=colour, marker="o", capsize=4, label=label, linewidth=2)
    ticks = [r[x_key] for r in next(iter(families.values()))]  # the first family's compute points
    _log_x(ax, ticks, [f"{t:.3g}" for t in ticks])  # 0.0417, not 4 x 10^-2
    return _finish(fig, ax, summary, x_label, path)


def plot_ablations(summary: list[dict[str, Any]], path: Path) -> Path | None:
    """One bar per configuration of every group that is neither the attention comparison nor a schedule."""
    rows = [r for r in summary if r["claim"] not in ("attention", "convergence")]
    if not rows:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, 0.7 * len(rows) + 2), 5))
    ax = fig.subplots()
    groups = list(dict.fromkeys(r["group"] for r in rows))
    colours = [COLOURS[groups.index(r["group"]) % len(COLOURS)] for r in rows]
    ax.bar(range(len(rows)), [r["top1"] for r in rows], yerr=[r["top1_std"] for r in rows], color=colours,
           capsize=4)  # fmt: skip
    ax.set_xticks(range(len(rows)), [f"{r['group']}\n{r['label']}" for r in rows], rotation=60, ha="right",
                  fontsize=8)  # fmt: skip
    ax.set_ylabel("top-1 % (mean ± std over seeds)")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _convergence_lines(summary: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The convergence rows that counted their steps, by label (prefixed by the group when several)."""
    rows = [r for r in summary if r["claim"] == "convergence" and r["steps"] is not None]
    several = len({r["group"] for r in rows}) > 1
    lines: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        lines.setdefault(f"{row['group']}: {row['label']}" if several else row["label"], []).append(row)
    return {label: sorted(points, key=lambda r: r["steps"]) for label, points in lines.items()}


def plot_convergence(summary: list[dict[str, Any]], path: Path) -> Path | None:
    """Top-1 against optimiser steps for the convergence groups: each point a whole training, mean over
    seeds, the band one standard deviation either side."""
    lines = _convergence_lines(summary)
    if not lines:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5))
    ax = fig.subplots()
    for (label, rows), colour in zip(lines.items(), COLOURS * 4):
        xs = [r["steps"] for r in rows]
        ys = [r["top1"] for r in rows]
        low = [r["top1"] - r["top1_std"] for r in rows]
        high = [r["top1"] + r["top1_std"] for r in rows]
        ax.plot(xs, ys, color=colour, marker="o", linewidth=2, label=label)
        ax.fill_between(xs, low, high, color=colour, alpha=0.15, linewidth=0)
    ticks = sorted({round(r["steps"]) for rows in lines.values() for r in rows})
    _log_x(ax, ticks, [str(t) for t in ticks])  # 200, 600, 1200, 2400 steps: short schedules not crowded
    return _finish(fig, ax, summary, "optimiser steps (each point a whole training with its own schedule)", path)


def write_plots(summary: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Every figure the records allow, in ``out_dir``."""
    made = [
        plot_top1_against(summary, "gmacs", "GMACs per clip (torch.utils.flop_counter)", out_dir / "top1_gmacs.png"),
        plot_top1_against(summary, "train_memory_mb", "training memory per clip (MiB)", out_dir / "top1_memory.png"),
        plot_ablations(summary, out_dir / "ablations.png"),
        plot_convergence(summary, out_dir / "convergence.png"),
    ]
    return [path for path in made if path is not None]
