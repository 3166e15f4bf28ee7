"""Decoded videos kept in memory, so that short videos read again (every epoch, every run of a study)
are decoded once per process.

Opt-in with ``data.cache_mb``. It pays off for data sets of short, small videos that fit in memory
(``vast data make-study``, Moving-Digits), where opening and decoding a file costs more than the
transform and the model's step. On a miss it decodes *every* frame of the video, so for long videos,
whose clips need a few of many frames, it is slower: leave it off there.

An entry is keyed by the file's path, size and modification time, so a rewritten file is decoded
again. Entries are dropped least recently used first when the budget is full; a video larger than the
whole budget is decoded and not kept. The cache lives in the process that loads the data: with
DataLoader workers (``data.num_workers > 0``) each worker would fill a copy that ends with its epoch,
so the engine accepts it only with ``num_workers: 0``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

_Key = tuple[str, int, int]


class DecodedVideo(NamedTuple):
    """A whole decoded video: what a clip sampler needs besides the decoder."""

    frames: np.ndarray  # uint8 (T, H, W, 3)
    times: np.ndarray  # float64 (T,): each frame's presentation time (VideoDecoder.frame_times)

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes + self.times.nbytes


class DecodedVideoCache:
    """Whole decoded videos (:class:`DecodedVideo`, read-only arrays), up to ``max_bytes`` in all."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be 0 or positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[_Key, DecodedVideo] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def video(self, path: str | os.PathLike, decode: Callable[[], DecodedVideo]) -> DecodedVideo:
        """Every frame of the video at ``path``, with their times: from memory, or ``decode()`` once
        and kept."""
        key = _file_key(path)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached
        video = decode()
        for array in video:
            array.flags.writeable = False  # shared by every later reader: nobody may change it in place
        with self._lock:
            self.misses += 1
            self._keep(key, video)
        return video

    def resize(self, max_bytes: int) -> None:
        """Change the budget, dropping the least recently used entries that no longer fit."""
        with self._lock:
            self.max_bytes = max_bytes
            self._evict()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def _keep(self, key: _Key, video: DecodedVideo) -> None:
        if video.nbytes > self.max_bytes or key in self._entries:
            return
        self._entries[key] = video
        self.bytes += video.nbytes
        self._evict()

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self.bytes -= dropped.nbytes


def _file_key(path: str | os.PathLike) -> _Key:
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns


_shared: DecodedVideoCache | None = None


def shared_cache(max_mb: float) -> DecodedVideoCache | None:
    """This process's cache with a budget of ``max_mb`` MiB (``None`` for 0): one per process, so the
    epochs of a run and the runs of a study (``vast study`` trains them in one process) share it."""
    global _shared
    if max_mb <= 0:
        return None
    budget = int(max_mb * 2**20)
    if _shared is None:
        _shared = DecodedVideoCache(budget)
    elif _shared.max_bytes != budget:
        _shared.resize(budget)
    return _shared
