"""Training checkpoints: written atomically, read with ``torch.load(weights_only=True)`` only.

A checkpoint holds everything an exact resume needs: model, optimiser, scheduler, gradient scaler,
EMA weights, the RNG states (torch, CUDA, numpy, Python), epoch and step, the resolved config and
the class names. ``last.pt`` is rewritten as training goes, ``best.pt`` when validation improves, and
``train.keep_last`` older copies of ``last.pt`` can be kept as ``checkpoint-e<epoch>-s<step>.pt``.

Writing is crash-safe: a checkpoint goes to a temporary file that is flushed and fsynced, renamed over
the old one, and the folder is fsynced after the rename, so that a crash, a kill or a power cut at any
moment leaves the old file or the new one, never a torn or missing one. A full disk is one error line
that says the previous checkpoint is intact.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vast.errors import CheckpointError

CHECKPOINT_VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, rename over ``path``, fsync the folder.

    A crash at any moment leaves either the old file or the new one, never a torn file; a failed write
    (a full disk, a file-size limit) removes its temporary file and raises :class:`CheckpointError`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_folder(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) or _is_write_error(exc):
            reason = _write_failure(exc)
            kept = f"the previous {path.name} is intact" if path.is_file() else f"no {path.name} was written"
            raise CheckpointError(f"cannot write checkpoint {path}: {reason}; {kept}; free disk space") from exc
        raise
    return path


def _is_write_error(exc: BaseException) -> bool:
    # torch.save's zip writer turns a failed write into a RuntimeError ("unexpected pos") raised while
    # the OSError is being handled
    return isinstance(exc, RuntimeError) and isinstance(exc.__context__ or exc.__cause__, OSError)


def _write_failure(exc: BaseException) -> str:
    """``No space left on device`` and friends, from an OSError or torch's RuntimeError around one."""
    for item in (exc, exc.__cause__, exc.__context__):
        if isinstance(item, OSError) and item.errno is not None:
            return os.strerror(item.errno)
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def fsync_folder(folder: str | Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def check_writable(folder: str | Path) -> None:
    """Fail before training starts when ``folder`` cannot hold the run's files."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CheckpointError(
            f"output folder {folder} is not writable ({reason}); choose another with --output DIR"
        ) from exc


def remove_stale_temporaries(folder: str | Path) -> None:
    """Delete the temporary files of checkpoint writes that a kill interrupted (``.last.pt.*.tmp``);
    called when a run starts, before anything writes to ``folder``."""
    for stale in Path(folder).glob(".*.pt.*.tmp"):
        stale.unlink(missing_ok=True)


def timed_save(obj: Any, path: str | Path) -> tuple[Path, float, int]:
    """:func:`atomic_save`, and the seconds it took and the bytes it wrote."""
    start = time.perf_counter()
    path = atomic_save(obj, path)
    return path, time.perf_counter() - start, path.stat().st_size


SNAPSHOT_GLOB = "checkpoint-e*-s*.pt"


def keep_snapshot(last: Path, epoch: int, step: int, keep: int) -> Path | None:
    """Keep the just-written ``last`` as ``checkpoint-e<epoch>-s<step>.pt`` (a hard link: no copy where
    the file system allows one) and delete all but the newest ``keep`` such snapshots."""
    if keep <= 0:
        return None
    snapshot = last.with_name(f"checkpoint-e{epoch:04d}-s{step:08d}.pt")
    snapshot.unlink(missing_ok=True)
    try:
        os.link(last, snapshot)
    except OSError:  # no hard links here (some network and FAT file systems): a real copy
        import shutil

        shutil.copyfile(last, snapshot)
    for old in sorted(last.parent.glob(SNAPSHOT_GLOB))[:-keep]:
        old.unlink(missing_ok=True)
    return snapshot


def capture_rng_state() -> dict[str, Any]:
    """Every generator a training step may draw from, in a form ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A training checkpoint written by :func:`atomic_save`, loaded with ``weights_only=True``."""
    path = Path(path)
    if path.is_dir():
        path = path / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; give a .pt file or a run folder with last.pt")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any read failure becomes one line
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from exc
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointError(f"{path} is not a vast training checkpoint (no 'model' entry)")
    return checkpoint
