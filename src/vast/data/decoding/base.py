"""The decoder ABC and what every decoder shares: the broken-video categories and error, the
frames of a request filled where a file yields fewer than promised, even frame times."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vast.errors import DataError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")  # matched in any case: ImageNet's files are .JPEG

# Why a file cannot be used, as `vast data check` reports it.
MISSING = "missing file"
ZERO_LENGTH = "zero-length"
NOT_A_VIDEO = "not a video"
AUDIO_ONLY = "audio-only"
NO_FRAMES = "no frames"
TRUNCATED = "truncated"
DECODE_ERROR = "decode error"
NOT_AN_IMAGE = "not an image"
BROKEN_CATEGORIES = (MISSING, ZERO_LENGTH, NOT_A_VIDEO, AUDIO_ONLY, NO_FRAMES, TRUNCATED, DECODE_ERROR, NOT_AN_IMAGE)
# A usable file with damage FFmpeg recovers from: `vast data check` warns about it, it is not broken.
DAMAGED = "damaged"
WARNING_CATEGORIES = (DAMAGED,)

class BrokenVideoError(DataError):
    """A video that cannot be opened or decoded; ``category`` is one of :data:`BROKEN_CATEGORIES`."""

    def __init__(self, path: str | os.PathLike, category: str, reason: str) -> None:
        self.path = str(path)
        self.category = category
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {category} ({self.reason})")


class VideoDecoder(ABC):
    """One opened video. Frame ``i`` is the ``i``-th frame in presentation order, from 0 (for a file,
    the ``i``-th frame its decoder outputs).

    Decoders hold open files: open them where they are used (inside a DataLoader worker), close them
    (or use ``with``), and never pickle them.
    """

    path: Path

    @property
    @abstractmethod
    def num_frames(self) -> int:
        """Number of frames, counted from the file itself (> 0)."""

    @property
    @abstractmethod
    def fps(self) -> float:
        """Frames per second (0.0 when the file does not say)."""

    @property
    def frame_times(self) -> np.ndarray:
        """Each frame's presentation time in seconds, float64 ``(num_frames,)``, non-decreasing, the
        first frame at 0. Here evenly spaced at ``fps`` (30 when it is unknown); a file's own
        timestamps where it has them (:class:`PyAVDecoder`)."""
        return even_times(self.num_frames, self.fps)

    @abstractmethod
    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Decode the sorted, unique, in-range frame indices ``wanted``; return what could be decoded."""

    def get_frames(self, indices: Sequence[int] | np.ndarray, *, as_tensor: bool = False) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 ``(T, H, W, 3)`` RGB.

        Returns a numpy array, or a torch tensor sharing its memory when ``as_tensor`` is true.
        Indices past the last decodable frame are clamped to it (see the module docstring).
        """
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index.size == 0:
            raise ValueError("get_frames needs at least one frame index")
        if index.min() < 0:
            raise ValueError(f"frame indices must be >= 0, got {int(index.min())}")
        index = np.minimum(index, self.num_frames - 1)
        decoded = self._decode(np.unique(index))
        if not decoded:
            raise BrokenVideoError(self.path, NO_FRAMES, "no frame could be decoded")
        frames = _fill_missing(index, decoded)
        return torch.from_numpy(frames) if as_tensor else frames

    def close(self) -> None:  # noqa: B027 - backends without open resources need not override it
        """Release the file."""

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        raise TypeError(
            f"{type(self).__name__} holds an open file and cannot be pickled; open the video inside "
            "the worker that reads it (VideoDataset does this per item)"
        )


def even_times(num_frames: int, fps: float) -> np.ndarray:
    """Times of ``num_frames`` frames at ``fps`` (30 when 0: a video that does not say its rate still
    has its frames evenly spaced, and the clip samplers measure time in mean frame durations)."""
    return np.arange(num_frames, dtype=np.float64) / (fps if fps > 0 else 30.0)


def _fill_missing(index: np.ndarray, decoded: dict[int, np.ndarray]) -> np.ndarray:
    """Stack the frames at ``index``; a frame that was not decoded takes the nearest earlier one."""
    have = np.array(sorted(decoded))
    # Position of the last decoded index <= each wanted index; none earlier -> the first decoded.
    pos = np.searchsorted(have, index, side="right") - 1
    chosen = have[np.maximum(pos, 0)]
    if len(have) < len(np.unique(index)):
        logger.debug("clamped %d wanted frames to decoded neighbours", int(np.sum(chosen != index)))
    return np.stack([decoded[int(i)] for i in chosen])


def _check_size(path: Path) -> None:
    """Raise :class:`BrokenVideoError` if ``path`` is missing, unreadable or empty."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BrokenVideoError(path, MISSING, "no such file") from None
    except OSError as exc:
        raise BrokenVideoError(path, MISSING, exc.strerror or str(exc)) from None
    if size == 0:
        raise BrokenVideoError(path, ZERO_LENGTH, "the file is empty")
