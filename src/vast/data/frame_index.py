"""Frame indexes by decoding, kept so that a file is decoded whole once, not at every opening.

A file whose container cannot say which frame is which (AVI, MPEG streams, an MP4 whose timestamps
are not trusted) is decoded once to index its frames (:class:`~vast.data.decoding.PyAVDecoder`).
That costs about as much as decoding the whole video, several times a training clip, and a data set
opens a file again for every clip. :class:`FrameIndexCache` keeps such indexes at two levels:

- **in memory**, per process, the most recently used ``max_entries``;
- **on disk**, in a folder that processes (DataLoader workers), epochs and runs share: one small
  ``.npy`` per indexed file, 8 bytes a frame, written atomically (a file written halfway is never
  read; a file that cannot be read is rebuilt). The folder is ``$VAST_CACHE_DIR/frame-index``, by
  default ``~/.cache/vast/frame-index`` (``$XDG_CACHE_HOME/vast/frame-index`` when set);
  ``VAST_CACHE_DIR=`` (empty) keeps indexes in memory only. Deleting the folder is always safe.

An index is found again only for the same file as it is now: the key is the file's resolved path,
size, modification time and stream, and the FFmpeg and PyAV versions that built it (another FFmpeg
may output other frames). A folder that cannot be written is reported once per process, and
indexes are then kept in memory only.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

logger = logging.getLogger(__name__)

# Part of every key: a change to what an index holds makes older files unread rather than misread.
INDEX_FORMAT = 1


class FrameIndex(NamedTuple):
    """Where each frame of a file is, frame ``i`` being FFmpeg's ``i``-th decoded output frame."""

    stamps: np.ndarray  # int64 (N,): the timestamp that names frame i (its packet's pts)
    keyframes: np.ndarray  # sorted frame indices where decoding can start after a seek; [0, ...]
    seek_stamps: np.ndarray  # per keyframe: the timestamp to seek to
    by_decoding: bool  # built by decoding the file once (its container's timestamps did not say)
    named: bool  # every frame has a stamp of its own; else frames are counted from the start


def default_folder() -> Path | None:
    """The on-disk folder from the environment (see the module docstring); ``None``: memory only."""
    root = os.environ.get("VAST_CACHE_DIR")
    if root is None:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vast"
    elif not root.strip():
        return None
    return Path(root).expanduser() / "frame-index"


class FrameIndexCache:
    """Indexes by decoding, in memory (least recently used dropped first) and on disk.

    Args:
        max_entries: indexes kept in this process's memory; 0 keeps none there.
        folder: the on-disk folder; ``None`` for memory only. By default it is read from the
            environment at each use (:func:`default_folder`), so a DataLoader worker started with
            another ``VAST_CACHE_DIR`` follows it.
    """

    _FROM_ENVIRONMENT = object()

    def __init__(self, max_entries: int = 1024, folder: str | os.PathLike | object | None = _FROM_ENVIRONMENT):
        self.max_entries = max_entries
        self._folder = folder
        self._entries: OrderedDict[tuple, FrameIndex] = OrderedDict()
        self._unwritable: set[Path] = set()  # folders already reported

    @property
    def folder(self) -> Path | None:
        if self._folder is FrameIndexCache._FROM_ENVIRONMENT:
            return default_folder()
        return None if self._folder is None else Path(self._folder)

    @folder.setter
    def folder(self, folder: str | os.PathLike | None) -> None:
        self._folder = folder

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Empty this process's memory (the folder on disk is shared: delete it to empty it)."""
        self._entries.clear()

    @staticmethod
    def key(path: Path, stream_index: int) -> tuple:
        stat = path.stat()
        return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stream_index)

    def get(self, key: tuple) -> FrameIndex | None:
        index = self._entries.get(key)
        if index is not None:
            self._entries.move_to_end(key)
            return index
        index = self._load(key)
        if index is not None:
            self._remember(key, index)
        return index

    def put(self, key: tuple, index: FrameIndex) -> None:
        self._remember(key, index)
        self._store(key, index)

    def _remember(self, key: tuple, index: FrameIndex) -> None:
        if self.max_entries <= 0:
            return
        for array in (index.stamps, index.keyframes, index.seek_stamps):
            array.flags.writeable = False  # shared by every decoder of the file
        self._entries[key] = index
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def file_of(self, key: tuple) -> Path | None:
        """Where the index of ``key`` is (or would be) stored; ``None`` without a folder."""
        folder = self.folder
        if folder is None:
            return None
        versions = (INDEX_FORMAT, av.__version__, av.ffmpeg_version_info)
        digest = hashlib.sha256(repr((key, versions)).encode()).hexdigest()[:32]
        return folder / f"{digest}.npy"

    def _load(self, key: tuple) -> FrameIndex | None:
        file = self.file_of(key)
        if file is None:
            return None
        try:
            return _unpack(np.load(file))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            logger.debug("%s: unreadable frame index (%s), indexing again", file, exc)
            return None

    def _store(self, key: tuple, index: FrameIndex) -> None:
        file = self.file_of(key)
        if file is None or file.parent in self._unwritable:
            return
        temporary = None
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            # Written beside its final name, then renamed: readers see a whole file or none, and
            # workers storing the same index at once each rename a whole file.
            with tempfile.NamedTemporaryFile(dir=file.parent, suffix=".tmp", delete=False) as handle:
                temporary = handle.name
                np.save(handle, _pack(index))
            os.replace(temporary, file)
        except OSError as exc:
            self._unwritable.add(file.parent)
            logger.warning(
                "cannot write frame indexes to %s (%s); they are kept in memory only. Set VAST_CACHE_DIR "
                "to a writable folder, or to an empty value to keep them in memory without this warning",
                file.parent,
                exc.strerror or exc,
            )
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)


def _pack(index: FrameIndex) -> np.ndarray:
    """An index as one int64 array (one ``.npy``: several times faster to load than an ``.npz``)."""
    head = [int(index.by_decoding), int(index.named), len(index.stamps), len(index.keyframes)]
    return np.concatenate([head, index.stamps, index.keyframes, index.seek_stamps]).astype(np.int64)


def _unpack(packed: np.ndarray) -> FrameIndex:
    """The index :func:`_pack` stored; ``ValueError`` when the array is not one."""
    if packed.dtype != np.int64 or packed.ndim != 1 or len(packed) < 4:
        raise ValueError("not a packed frame index")
    by_decoding, named, frames, keys = (int(value) for value in packed[:4])
    if frames < 1 or keys < 1 or len(packed) != 4 + frames + 2 * keys:
        raise ValueError(f"a frame index of {len(packed)} numbers cannot hold {frames} frames, {keys} keyframes")
    stamps, keyframes, seek_stamps = np.split(packed[4:], [frames, frames + keys])
    return FrameIndex(stamps, keyframes, seek_stamps, bool(by_decoding), bool(named))


# This process's cache of indexes by decoding: FRAME_INDEX_CACHE.clear() empties its memory,
# FRAME_INDEX_CACHE.max_entries = 0 keeps none in memory, FRAME_INDEX_CACHE.folder = None none on disk.
FRAME_INDEX_CACHE = FrameIndexCache()
