"""A run's output folder: which earlier run in it a new one continues, and what ``--restart`` moves
aside. A run folder holds ``config.yaml``, ``last.pt`` / ``best.pt`` (and kept snapshots), the CSV and
TensorBoard logs and ``report.md``."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from vast.engine.checkpoint import SNAPSHOT_GLOB, load_checkpoint
from vast.engine.config import RUN_LENGTH_AND_PLACE, RunConfig, config_differences, config_from_dict
from vast.errors import ConfigError
from vast.models.saved_options import saved_options

_logger = logging.getLogger(__name__)

# What --restart moves aside: everything a run writes (snapshots, the final model's test included).
RUN_FILES = ("last.pt", "best.pt", "train.csv", "val.csv", "report.md", "curves.png", "tb")
RUN_GLOBS = (SNAPSHOT_GLOB, "eval_*.json", "confusion_*.png")


def saved_config(state: dict[str, Any]) -> RunConfig:
    """A checkpoint's configuration, its model options as it was trained with (saved_options)."""
    saved = config_from_dict(state["config"])
    saved.model.options = saved_options(saved.model.name, saved.model.options)
    return saved


def resumed_config(config: RunConfig, state: dict[str, Any]) -> RunConfig:
    """The checkpoint's configuration, with the run length, place and checkpointing the caller asks for
    (an explicit resume may also change ``train.epochs``: the schedule then stretches from where it is)."""
    saved = saved_config(state)
    for key in (*RUN_LENGTH_AND_PLACE, "train.epochs"):
        section, name = key.split(".")
        setattr(getattr(saved, section), name, getattr(getattr(config, section), name))
    return saved


def own_last_state(config: RunConfig) -> dict[str, Any] | None:
    """``<output_dir>/last.pt`` when auto-resume is on and it holds a run of this configuration; a run
    of another configuration there is an error that says what to do."""
    last = Path(config.train.output_dir) / "last.pt"
    if not config.train.auto_resume or not last.is_file():
        return None
    state = load_checkpoint(last)
    differing = config_differences(saved_config(state), config)
    if differing:
        shown = ", ".join(differing[:4]) + (f" and {len(differing) - 4} more" if len(differing) > 4 else "")
        raise ConfigError(
            f"{last} is a run of another configuration ({shown} differ); continue it with its own settings, "
            "start over with --restart, or choose another --output"
        )
    _logger.info("continuing the run in %s from its last.pt", last.parent)
    return state


def move_earlier_run_aside(output_dir: Path) -> Path | None:
    """``--restart``: the folder's earlier checkpoints and logs go to ``replaced-<time>/``, not away;
    that folder, or None when there was nothing to move."""
    earlier = [output_dir / name for name in RUN_FILES if (output_dir / name).exists()]
    earlier += [path for pattern in RUN_GLOBS for path in sorted(output_dir.glob(pattern))]
    if not earlier:
        return None
    stamp = time.strftime("replaced-%Y%m%d-%H%M%S")
    aside, count = output_dir / stamp, 1
    while aside.exists():  # two restarts within a second
        aside, count = output_dir / f"{stamp}-{count}", count + 1
    aside.mkdir()
    for path in earlier:
        shutil.move(str(path), str(aside / path.name))
    _logger.info("--restart: moved the earlier run's files to %s", aside)
    return aside
