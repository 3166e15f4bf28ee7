"""Clip samplers: which frames of a video make up each clip.

A :class:`ClipSampler` maps a video's frame count to frame indices, an int64 array of shape
``(num_clips, clip_length)`` (one row per clip, indices in time order, repeats allowed). Training
samplers draw their randomness from an explicit ``numpy.random.Generator``, so a run is reproducible
and DataLoader workers (each with its own generator) differ. Evaluation samplers are deterministic.

Every sampler also has :meth:`ClipSampler.clip_at`: the deterministic clip at a relative position
``p`` in [0, 1) along the video (0.5: the centre clip); :class:`MultiViewSampler` uses it to take
``num_clips`` evenly spaced clips, at positions ``(k + 0.5) / num_clips``.

Short videos (fewer frames than a clip spans):

- TSN: frame ``i`` is ``floor((i + p) * n / T)`` for ``T`` segments over ``n`` frames, which is always
  a valid index, so when ``n < T`` frames repeat in order (``n = 5, T = 8`` at the centre gives
  ``0 0 1 2 2 3 4 4``).
- Dense: a clip of ``T`` frames at stride ``s`` spans ``(T - 1) * s + 1`` frames. When the video is
  shorter, the clip starts at frame 0 and every index past the end is clamped to the last frame
  (``n = 5, T = 4, s = 2`` gives ``0 2 4 4``), so the clip keeps its frame rate and ends on a
  still frame, as PySlowFast and mmaction's ``repeat_last`` do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class ClipSampler(ABC):
    """Chooses the frames of ``num_clips`` clips of ``clip_length`` frames from a video."""

    clip_length: int
    num_clips: int = 1
    training: bool = False

    @abstractmethod
    def clip_at(self, num_frames: int, position: float) -> np.ndarray:
        """The deterministic clip at relative position ``position`` in [0, 1): int64 ``(clip_length,)``."""

    @abstractmethod
    def sample(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frame indices for a video of ``num_frames`` frames: int64 ``(num_clips, clip_length)``.

        Training samplers need ``rng``; evaluation samplers ignore it.
        """

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class TSNSampler(ClipSampler):
    """TSN segment sampling: ``num_segments`` equal segments, one frame from each.

    Training takes a uniformly random frame in each segment (independently per segment); evaluation
    takes the centre frame of each segment.
    """

    def __init__(self, num_segments: int, *, training: bool = False) -> None:
        _check_positive(num_segments=num_segments)
        self.clip_length = num_segments
        self.training = training

    def clip_at(self, num_frames: int, position: float) -> np.ndarray:
        return self._indices(num_frames, np.full(self.clip_length, position))

    def sample(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if not self.training:
            return self.clip_at(num_frames, 0.5)[None]
        offsets = _need_rng(rng, self).random(self.clip_length)
        return self._indices(num_frames, offsets)[None]

    def _indices(self, num_frames: int, offsets: np.ndarray) -> np.ndarray:
        _check_positive(num_frames=num_frames)
        segment = np.arange(self.clip_length) + offsets
        index = np.floor(segment * num_frames / self.clip_length).astype(np.int64)
        return np.clip(index, 0, num_frames - 1)


class DenseSampler(ClipSampler):
    """Dense sampling: ``clip_length`` consecutive frames at ``stride``.

    Training starts the clip at a uniformly random frame (every start that fits is equally likely);
    evaluation takes the clip in the middle of the video.
    """

    def __init__(self, clip_length: int, stride: int = 1, *, training: bool = False) -> None:
        _check_positive(clip_length=clip_length, stride=stride)
        self.clip_length = clip_length
        self.stride = stride
        self.training = training

    @property
    def span(self) -> int:
        """Frames from the first to the last frame of a clip, both included."""
        return (self.clip_length - 1) * self.stride + 1

    def clip_at(self, num_frames: int, position: float) -> np.ndarray:
        _check_positive(num_frames=num_frames)
        choices = max(num_frames - self.span, 0) + 1  # possible start frames
        return self._indices(num_frames, min(int(np.floor(position * choices)), choices - 1))

    def sample(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        if not self.training:
            return self.clip_at(num_frames, 0.5)[None]
        _check_positive(num_frames=num_frames)
        start = int(_need_rng(rng, self).integers(0, max(num_frames - self.span, 0) + 1))
        return self._indices(num_frames, start)[None]

    def _indices(self, num_frames: int, start: int) -> np.ndarray:
        index = start + self.stride * np.arange(self.clip_length, dtype=np.int64)
        return np.minimum(index, num_frames - 1)


class MultiViewSampler(ClipSampler):
    """``num_clips`` deterministic clips per video for multi-view testing.

    Clip ``k`` is ``base.clip_at(n, (k + 0.5) / num_clips)``: for dense sampling, clips whose starts
    are evenly spread over the video; for TSN, the same segments with the frame taken at evenly
    spread offsets inside each segment. With ``num_clips = 1`` it equals ``base`` in evaluation mode.
    """

    def __init__(self, base: ClipSampler, num_clips: int) -> None:
        _check_positive(num_clips=num_clips)
        self.base = base
        self.clip_length = base.clip_length
        self.num_clips = num_clips
        self.training = False

    def clip_at(self, num_frames: int, position: float) -> np.ndarray:
        return self.base.clip_at(num_frames, position)

    def sample(self, num_frames: int, rng: np.random.Generator | None = None) -> np.ndarray:
        positions = (np.arange(self.num_clips) + 0.5) / self.num_clips
        return np.stack([self.base.clip_at(num_frames, float(p)) for p in positions])


def build_sampler(
    kind: str, clip_length: int, stride: int = 1, *, training: bool, num_clips: int = 1
) -> ClipSampler:
    """A sampler by name: ``kind`` is ``"tsn"`` (``stride`` unused) or ``"dense"``.

    ``num_clips > 1`` (evaluation only) wraps it in a :class:`MultiViewSampler`.
    """
    if kind == "tsn":
        sampler: ClipSampler = TSNSampler(clip_length, training=training)
    elif kind == "dense":
        sampler = DenseSampler(clip_length, stride, training=training)
    else:
        raise ValueError(f"unknown sampling {kind!r}; choose 'tsn' or 'dense'")
    if num_clips == 1:
        return sampler
    if training:
        raise ValueError(f"num_clips={num_clips} is for evaluation; training samples one clip per item")
    return MultiViewSampler(sampler, num_clips)


def _need_rng(rng: np.random.Generator | None, sampler: ClipSampler) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{type(sampler).__name__} in training mode needs rng=numpy.random.Generator")
    return rng


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
