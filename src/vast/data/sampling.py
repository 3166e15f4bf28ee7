"""Clip samplers: which frames of a video make up each clip.

Two families, each by frame index and by presentation time (:data:`SAMPLERS`):

- ``tsn`` / ``dense`` (:class:`TimeTSNSampler`, :class:`TimeDenseSampler`) spread a clip evenly in
  *time*, from each frame's presentation time (:attr:`~vast.data.decoding.VideoDecoder.frame_times`),
  as PySlowFast's PyAV path and torchvision's ``frame_rate`` do: a variable-frame-rate video (a phone
  recording that slows its rate in the dark) is covered evenly in seconds, not in frames.
- ``tsn_frames`` / ``dense_frames`` (:class:`TSNSampler`, :class:`DenseSampler`) count frames.

The time samplers measure time in *mean frame durations* from the first frame (:func:`frame_positions`):
frame ``i`` of a constant-frame-rate video sits at position ``i``, and a time sampler draws exactly what
the index sampler draws (the same numbers from the same generator), so on such videos the two pick the
same frames. Position ``x`` shows the last frame starting at or before it, so a span of a variable-rate
video in which no frame starts (a long-held frame) takes the frame on screen then.

A :class:`ClipSampler` maps a video's frame count (and its frame times) to frame indices, an int64 array of shape
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

TSN_SAMPLERS = ("tsn", "tsn_frames")
DENSE_SAMPLERS = ("dense", "dense_frames")
SAMPLERS = ("tsn", "dense", "tsn_frames", "dense_frames")  # the names build_sampler and data.sampler accept

# Containers round timestamps to their clock (Matroska: 1 ms, so 30 fps gives 0, 33, 67, 100 ms ...):
# a frame within this many mean frame durations of the even grid is taken to be on it, so such
# constant-rate files sample exactly as by index. It moves a variable-rate frame by at most as much.
GRID_TOLERANCE = 0.1


class ClipSampler(ABC):
    """Chooses the frames of ``num_clips`` clips of ``clip_length`` frames from a video."""

    clip_length: int
    num_clips: int = 1
    training: bool = False

    @abstractmethod
    def clip_at(self, num_frames: int, position: float, *, times: np.ndarray | None = None) -> np.ndarray:
        """The deterministic clip at relative position ``position`` in [0, 1): int64 ``(clip_length,)``."""

    @abstractmethod
    def sample(
        self, num_frames: int, rng: np.random.Generator | None = None, *, times: np.ndarray | None = None
    ) -> np.ndarray:
        """Frame indices for a video of ``num_frames`` frames: int64 ``(num_clips, clip_length)``.

        Training samplers need ``rng``; evaluation samplers ignore it. ``times``: each frame's
        presentation time in seconds (``VideoDecoder.frame_times``), which time samplers follow and
        index samplers ignore; without it frames are taken to be evenly spaced.
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

    def clip_at(self, num_frames: int, position: float, *, times: np.ndarray | None = None) -> np.ndarray:
        return self._indices(num_frames, np.full(self.clip_length, position), times)

    def sample(
        self, num_frames: int, rng: np.random.Generator | None = None, *, times: np.ndarray | None = None
    ) -> np.ndarray:
        if not self.training:
            return self.clip_at(num_frames, 0.5, times=times)[None]
        offsets = _need_rng(rng, self).random(self.clip_length)
        return self._indices(num_frames, offsets, times)[None]

    def _indices(self, num_frames: int, offsets: np.ndarray, times: np.ndarray | None) -> np.ndarray:
        _check_positive(num_frames=num_frames)
        # Where in the video, in frames: a uniform draw in a segment is a uniform draw in time.
        segment = np.arange(self.clip_length) + offsets
        return self._frames_at(segment * num_frames / self.clip_length, num_frames, times)

    def _frames_at(self, positions: np.ndarray, num_frames: int, times: np.ndarray | None) -> np.ndarray:
        return np.clip(np.floor(positions).astype(np.int64), 0, num_frames - 1)


class TimeTSNSampler(TSNSampler):
    """TSN segments of equal *duration*: segment ``k`` is the ``k``-th of ``num_segments`` equal spans
    of ``[first frame's time, last frame's time + its duration)``.

    Evaluation takes the frame on screen at each span's centre; training the frame on screen at a
    uniformly random time in each span (a frame's chance is its share of the span's time). On a
    constant-frame-rate video these are :class:`TSNSampler`'s frames, from the same draws.
    """

    def _frames_at(self, positions: np.ndarray, num_frames: int, times: np.ndarray | None) -> np.ndarray:
        return _frame_shown(positions, _timeline(num_frames, times)[0])


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

    def clip_at(self, num_frames: int, position: float, *, times: np.ndarray | None = None) -> np.ndarray:
        _check_positive(num_frames=num_frames)
        choices = self._starts(num_frames, times)  # possible start frames
        return self._indices(num_frames, min(int(np.floor(position * choices)), choices - 1), times)

    def sample(
        self, num_frames: int, rng: np.random.Generator | None = None, *, times: np.ndarray | None = None
    ) -> np.ndarray:
        if not self.training:
            return self.clip_at(num_frames, 0.5, times=times)[None]
        _check_positive(num_frames=num_frames)
        start = int(_need_rng(rng, self).integers(0, self._starts(num_frames, times)))
        return self._indices(num_frames, start, times)[None]

    def _starts(self, num_frames: int, times: np.ndarray | None) -> int:
        return max(num_frames - self.span, 0) + 1

    def _indices(self, num_frames: int, start: int, times: np.ndarray | None) -> np.ndarray:
        index = start + self.stride * np.arange(self.clip_length, dtype=np.int64)
        return np.minimum(index, num_frames - 1)


class TimeDenseSampler(DenseSampler):
    """Dense sampling at a frame rate: frame ``k`` of a clip is the one on screen ``k * stride / fps``
    seconds after the clip's start, as PySlowFast's ``target_fps``.

    ``fps`` 0 takes the video's own mean rate (its frame count over its duration), so ``stride`` counts
    mean frame durations; on a constant-frame-rate video that is :class:`DenseSampler`'s clip, from the
    same draw. Clips start at whole mean frame durations (position ``s`` shows the frame on screen
    then), the same starts as :class:`DenseSampler`'s; a clip longer than the video ends on its last frame.
    """

    def __init__(self, clip_length: int, stride: int = 1, *, fps: float = 0.0, training: bool = False) -> None:
        super().__init__(clip_length, stride, training=training)
        if not fps >= 0:
            raise ValueError(f"fps must be 0 (the video's own rate) or positive, got {fps!r}")
        self.fps = float(fps)

    def _step(self, num_frames: int, times: np.ndarray | None) -> float:
        """Mean frame durations between the frames of a clip."""
        if self.fps == 0:
            return float(self.stride)
        frame_duration = _timeline(num_frames, times)[1]
        return self.stride / (self.fps * frame_duration) if frame_duration > 0 else float(self.stride)

    def _starts(self, num_frames: int, times: np.ndarray | None) -> int:
        extent = (self.clip_length - 1) * self._step(num_frames, times)
        return max(int(np.floor(num_frames - 1 - extent + 1e-9)), 0) + 1

    def _indices(self, num_frames: int, start: int, times: np.ndarray | None) -> np.ndarray:
        at = start + self._step(num_frames, times) * np.arange(self.clip_length)
        # A moment k * stride / fps meant to be a frame's start may come out a hair before it in floating
        # point: take the frame that starts then. (Whole positions, fps 0, are exact: no change there.)
        return _frame_shown(at + 1e-6, _timeline(num_frames, times)[0])


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

    def clip_at(self, num_frames: int, position: float, *, times: np.ndarray | None = None) -> np.ndarray:
        return self.base.clip_at(num_frames, position, times=times)

    def sample(
        self, num_frames: int, rng: np.random.Generator | None = None, *, times: np.ndarray | None = None
    ) -> np.ndarray:
        positions = (np.arange(self.num_clips) + 0.5) / self.num_clips
        return np.stack([self.base.clip_at(num_frames, float(p), times=times) for p in positions])


def build_sampler(
    kind: str, clip_length: int, stride: int = 1, *, training: bool, num_clips: int = 1, fps: float = 0.0
) -> ClipSampler:
    """A sampler by name (:data:`SAMPLERS`): ``"tsn"`` and ``"dense"`` by presentation time,
    ``"tsn_frames"`` and ``"dense_frames"`` by frame index. ``stride`` is for the dense ones; ``fps``
    (0: each video's own rate) for ``"dense"`` only.

    ``num_clips > 1`` (evaluation only) wraps it in a :class:`MultiViewSampler`.
    """
    if kind not in SAMPLERS:
        raise ValueError(f"unknown sampling {kind!r}; choose one of {', '.join(SAMPLERS)}")
    if fps and kind != "dense":
        raise ValueError(f"fps={fps} sets the frame rate of 'dense' sampling; {kind!r} has none")
    if kind == "tsn":
        sampler: ClipSampler = TimeTSNSampler(clip_length, training=training)
    elif kind == "tsn_frames":
        sampler = TSNSampler(clip_length, training=training)
    elif kind == "dense":
        sampler = TimeDenseSampler(clip_length, stride, fps=fps, training=training)
    else:
        sampler = DenseSampler(clip_length, stride, training=training)
    if num_clips == 1:
        return sampler
    if training:
        raise ValueError(f"num_clips={num_clips} is for evaluation; training samples one clip per item")
    return MultiViewSampler(sampler, num_clips)


def frame_positions(times: np.ndarray) -> np.ndarray:
    """Each frame's start in mean frame durations after the first frame's: float64 ``(N,)``, exactly
    ``0, 1, ..., N - 1`` for evenly spaced ``times`` (seconds, non-decreasing)."""
    return _timeline(len(times), times)[0]


def _timeline(num_frames: int, times: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Frame positions (:func:`frame_positions`) and the mean frame duration in seconds (0 unknown).

    The video lasts from the first frame's time to the last frame's plus its duration, which no
    timestamp gives: it is taken to be the interval before it, the frame rate there.
    """
    even = np.arange(num_frames, dtype=np.float64)
    if times is None or num_frames < 2:
        return even, 0.0
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (num_frames,):
        raise ValueError(f"times must have one entry per frame ({num_frames}), got shape {t.shape}")
    t = t - t[0]
    last = t[-1] - t[-2]
    duration = t[-1] + (last if last > 0 else t[-1] / (num_frames - 1))
    if not (np.isfinite(duration) and duration > 0 and np.all(np.diff(t) >= 0)):
        return even, 0.0  # no usable clock: count frames
    position = t * (num_frames / duration)
    grid = np.rint(position)
    return np.where(np.abs(position - grid) <= GRID_TOLERANCE, grid, position), duration / num_frames


def _frame_shown(positions: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The frame on screen at each position: the last one starting at or before it, else the first.
    On ``frames = 0, 1, ..., N - 1`` that is ``floor`` clamped to the video, as the index samplers do."""
    index = np.searchsorted(frames, positions, side="right") - 1
    return np.clip(index, 0, len(frames) - 1).astype(np.int64)


def _need_rng(rng: np.random.Generator | None, sampler: ClipSampler) -> np.random.Generator:
    if rng is None:
        raise ValueError(f"{type(sampler).__name__} in training mode needs rng=numpy.random.Generator")
    return rng


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
