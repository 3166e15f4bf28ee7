"""Run logs and reports: CSV and TensorBoard scalars, PNG curves, confusion matrices, ``report.md``."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np

from vast.engine.tables import markdown_table as markdown_table  # one writer, shared with vast bench

_logger = logging.getLogger(__name__)


class MetricsLogger:
    """Appends rows to ``<dir>/<name>.csv`` and the same scalars to TensorBoard (``<dir>/tb``).

    Columns are fixed by the first row; a resumed run appends to the existing file.
    """

    def __init__(self, directory: str | Path, name: str = "metrics", tensorboard: bool = True) -> None:
        self.path = Path(directory) / f"{name}.csv"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] | None = None
        if self.path.is_file() and self.path.stat().st_size > 0:
            with self.path.open() as handle:
                self._columns = next(csv.reader(handle), None)
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(Path(directory) / "tb"))
            except ImportError:  # tensorboard is a dependency; keep logging CSV if it is broken
                _logger.warning("tensorboard is not importable; logging CSV only")

    def log(self, row: Mapping[str, Any], step: int, prefix: str = "") -> None:
        if self._columns is None:
            self._columns = list(row)
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(self._columns)
        with self.path.open("a", newline="") as handle:
            csv.writer(handle).writerow([_fmt(row.get(c, "")) for c in self._columns])
        if self._writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self._writer.add_scalar(f"{prefix}{key}", value, step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class Throughput:
    """Clips per second and the time spent waiting for data, over the steps since the last log row."""

    def __init__(self) -> None:
        self.clips, self.start, self.data_time = 0, time.perf_counter(), 0.0

    def timed(self, loader: Any) -> Any:
        """The loader's batches, the wait for each added to ``data_time``."""
        fetch = time.perf_counter()
        for batch in loader:
            self.data_time += time.perf_counter() - fetch
            yield batch
            fetch = time.perf_counter()

    def take(self) -> dict[str, float]:
        """The row's ``clips_per_s`` and ``data_time_s``; the next window starts now."""
        elapsed = time.perf_counter() - self.start
        row = {"clips_per_s": self.clips / max(elapsed, 1e-9), "data_time_s": self.data_time}
        self.clips, self.start, self.data_time = 0, time.perf_counter(), 0.0
        return row


def read_csv(path: str | Path) -> list[dict[str, float]]:
    """Rows of a metrics CSV as floats (empty cells skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]


def drop_rows_after(path: str | Path, step: int) -> None:
    """Remove the rows of a metrics CSV logged after optimiser step ``step``: a run resumed from a
    checkpoint written at ``step`` logs them again."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or "step" not in rows[0]:
        return
    column = rows[0].index("step")
    kept = [rows[0]] + [row for row in rows[1:] if len(row) > column and float(row[column]) <= step]
    if len(kept) == len(rows):
        return
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)
    tmp.replace(path)


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def plot_curves(
    runs: Mapping[str, tuple[Sequence[dict[str, float]], Sequence[dict[str, float]]]], path: str | Path
) -> Path:
    """Training loss per step and validation top-1 per epoch, one line per run.

    ``runs`` maps a run label to ``(train rows, validation rows)`` as read by :func:`read_csv`.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for label, (train_rows, val_rows) in runs.items():
        steps = [r["step"] for r in train_rows if "loss" in r]
        losses = [r["loss"] for r in train_rows if "loss" in r]
        ax_loss.plot(steps, losses, label=label)
        epochs = [r["epoch"] for r in val_rows if "top1" in r]
        ax_acc.plot(epochs, [r["top1"] for r in val_rows if "top1" in r], marker="o", label=label)
    ax_loss.set(xlabel="optimiser step", ylabel="training loss", title="Training loss")
    ax_acc.set(xlabel="epoch", ylabel="top-1 (%)", title="Validation top-1 (single clip)", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted class)."""
    counts = np.asarray(matrix, dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(4.0, 0.45 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
    ticks = np.arange(len(class_names))
    if len(class_names) <= 40:
        ax.set_xticks(ticks, class_names, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(ticks, class_names, fontsize=8)
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                if counts[i, j]:
                    color = "white" if normalised[i, j] > 0.6 else "black"
                    ax.text(j, i, int(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
    ax.set(xlabel="predicted", ylabel="true", title=title or "Confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_training_report(
    output_dir: Path,
    config: Any,
    *,
    train_videos: int,
    num_classes: int,
    epochs: int,
    steps: int,
    seconds: float,
    where: str,
    broken: int,
    history: list[dict[str, float]],
    best_top1: float,
    test: Any = None,
) -> Path:
    """``report.md`` and ``curves.png`` of a run (``config``: its RunConfig) from its CSV logs;
    ``test``: the multi-view test of the final model (an ``EvalResult``), when the run made one."""
    curves = plot_curves(
        {config.model.name: (read_csv(output_dir / "train.csv"), read_csv(output_dir / "val.csv"))},
        output_dir / "curves.png",
    )
    rows = [(int(r["epoch"]), f"{r['top1']:.2f}", f"{r['top5']:.2f}", f"{r['loss']:.3f}") for r in history]
    lines = [
        f"# Training report: {config.model.name}",
        "",
        f"- data: `{config.data.train}` ({train_videos} videos, {num_classes} classes); "
        f"validation `{config.data.val or '-'}`",
        f"- {epochs} epochs, {steps} optimiser steps, {seconds:.0f} s on {where}",
        f"- clip: {config.data.num_frames} frames ({config.data.sampler} sampling), {config.data.crop_size} px crop",
        f"- broken training videos skipped: {broken}",
        "",
        "## Validation (single clip, centre crop)",
        "",
        markdown_table(["epoch", "top-1 %", "top-5 %", "loss"], rows) if history else "no validation set",
        "",
        f"![curves]({curves.name})",
        "",
        f"Best single-clip top-1: {max(best_top1, 0.0):.2f} %. Checkpoints: `last.pt`, `best.pt`; "
        "multi-view testing: `vast eval best.pt --views 4x3`.",
        "",
    ]
    if test is not None:
        lines += [
            f"## Test of the final model ({test.views} views)",
            "",
            f"Top-1 {test.top1:.2f} %, top-5 {test.top5:.2f} % on {test.videos} videos ({test.missing} missing); "
            f"{test.protocol}. Weights: {test.weights}. Per class and confusion: `eval_{test.views}.json`, "
            f"`confusion_{test.views}.png`.",
            "",
        ]
    path = output_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
