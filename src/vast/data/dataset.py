"""The video dataset, its collate function and the record of broken videos.

:class:`VideoDataset` is a plain map-style dataset, so it works with any sampler (shuffling,
``DistributedSampler``) and any number of DataLoader workers: each item opens its video, decodes
the frames the clip sampler picks, closes it, and transforms the clip. No decoder is created in the
main process or shared between workers.

Randomness comes from torch's generator only: each item seeds the ``numpy.random.Generator`` its
clip sampler draws from with a number drawn from torch, and the spatial transforms draw from torch
directly. The DataLoader seeds torch's generator in every worker from its own base seed (new each
epoch) plus the worker id, so workers differ, epochs differ, and ``torch.manual_seed`` before
iterating makes a run reproducible for a given number of workers. :func:`seed_worker` also seeds
Python's and numpy's global generators, for third-party transforms that use them.

Broken videos (``on_error``): ``"raise"`` raises :class:`~vast.data.decoding.BrokenVideoError` (a
``DataError``) naming the file and the reason. ``"skip"`` logs a warning and returns a
:class:`BrokenVideo` marker instead of the item; :func:`collate_videos` drops the markers and lists
them in ``VideoBatch.broken``, and a :class:`BrokenVideoLog` in the main process counts them (for
training: skipped videos; for evaluation: missing videos). A broken video is never replaced by
another one.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import av
import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info
from torchvision.transforms import v2

from vast.data.annotations import Annotations
from vast.data.cache import DecodedVideo, DecodedVideoCache
from vast.data.decoding import DECODE_ERROR, BrokenVideoError, open_video
from vast.data.sampling import ClipSampler
from vast.data.transforms import ToClip, to_video

logger = logging.getLogger(__name__)

ON_ERROR = ("raise", "skip")


class BrokenVideo(NamedTuple):
    """Marker returned instead of an item whose video could not be read (``on_error="skip"``)."""

    index: int
    path: str
    category: str
    reason: str


class VideoBatch(NamedTuple):
    """A collated batch.

    ``clips``: float ``(B, C, T, H, W)``, or ``(B, V, C, T, H, W)`` in multi-view mode;
    ``labels`` and ``indices``: int64 ``(B,)``; ``broken``: the items of this batch that were
    dropped because their video is broken. ``B`` is 0 when every item was broken (then ``clips`` is
    an empty tensor).
    """

    clips: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    broken: list[BrokenVideo]


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run the block on one torch thread, as DataLoader workers do.

    Without workers (``num_workers=0``) torch would split every op of a clip or batch over all cores;
    when the machine is busy, waiting for those threads costs more than the work (a 16x64x64 demo
    clip: 5x slower on 2 cores, measured). Setting the thread count costs well under a microsecond.
    """
    threads = torch.get_num_threads()
    if threads == 1 or get_worker_info() is not None:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def collate_videos(items: list[tuple[torch.Tensor, int, int] | BrokenVideo]) -> VideoBatch:
    """Stack the good items of a batch and set the :class:`BrokenVideo` markers aside."""
    broken = [item for item in items if isinstance(item, BrokenVideo)]
    good = [item for item in items if not isinstance(item, BrokenVideo)]
    if not good:
        empty = torch.empty(0, dtype=torch.int64)
        return VideoBatch(torch.empty(0), empty, empty.clone(), broken)
    with _one_torch_thread():
        clips = torch.stack([clip for clip, _, _ in good])
    labels = torch.tensor([label for _, label, _ in good], dtype=torch.int64)
    indices = torch.tensor([index for _, _, index in good], dtype=torch.int64)
    return VideoBatch(clips, labels, indices, broken)


class BrokenVideoLog:
    """Main-process record of the broken videos met so far, fed with ``VideoBatch.broken``.

    Workers are separate processes, so the count cannot live in the dataset: the engine passes each
    batch's ``broken`` list to :meth:`add`. A video is counted once however often it is met.
    """

    def __init__(self) -> None:
        self._records: dict[int, BrokenVideo] = {}

    def add(self, broken: Iterable[BrokenVideo]) -> None:
        for item in broken:
            if item.index not in self._records:
                self._records[item.index] = item
                logger.debug("broken video %d so far: %s", len(self._records), item.path)

    @property
    def count(self) -> int:
        return len(self._records)

    @property
    def paths(self) -> list[str]:
        return [item.path for item in self.records]

    @property
    def records(self) -> list[BrokenVideo]:
        return sorted(self._records.values())

    def summary(self, verb: str = "skipped") -> str:
        """One line such as ``"2 broken videos skipped: a.mp4 (truncated), b.mp4 (zero-length)"``."""
        if not self._records:
            return f"0 broken videos {verb}"
        listed = ", ".join(f"{item.path} ({item.category})" for item in self.records[:5])
        more = f", and {self.count - 5} more" if self.count > 5 else ""
        return f"{self.count} broken video{'s' if self.count > 1 else ''} {verb}: {listed}{more}"


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` that seeds Python's and numpy's global generators from torch's worker seed."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


class VideoDataset(Dataset):
    """Clips of the videos in ``annotations``.

    Args:
        annotations: the videos and labels (:func:`~vast.data.annotations.load_annotations`).
        sampler: picks the frames (:mod:`vast.data.sampling`); a training sampler draws them at random.
        transform: called as ``transform(video, label) -> (clip, label)`` on a uint8
            ``tv_tensors.Video`` ``(T, 3, H, W)``; it must return a ``(C, T, H, W)`` clip, or
            ``(crops, C, T, H, W)`` in multi-view mode (see :mod:`vast.data.transforms`). Default:
            float in [0, 1], ``(C, T, H, W)``, no resizing.
        multi_view: return all views of a video: ``sampler.num_clips`` clips x the crops of the
            transform, stacked ``(V, C, T, H, W)`` with view ``v = clip * num_crops + crop``.
        on_error: ``"raise"`` or ``"skip"`` for broken videos (see the module docstring).
        decoder_threads: threads per decoder (1 suits DataLoader workers).
        frame_folder_fps: frame rate assumed for frame-folder videos.
        cache: keep whole decoded videos in memory and take clips from there
            (:mod:`vast.data.cache`; the same frames as decoding them each time).

    An item is ``(clip, label, index)`` (``label`` after a label-aware flip), or a
    :class:`BrokenVideo` when its video is broken and ``on_error="skip"``. Use
    :func:`collate_videos` as the DataLoader's ``collate_fn``.
    """

    def __init__(
        self,
        annotations: Annotations,
        sampler: ClipSampler,
        transform: Callable[[Any, int], tuple[torch.Tensor, int]] | None = None,
        *,
        multi_view: bool = False,
        on_error: str = "skip",
        decoder_threads: int = 1,
        frame_folder_fps: float = 30.0,
        cache: DecodedVideoCache | None = None,
    ) -> None:
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if sampler.num_clips > 1 and not multi_view:
            raise ValueError(f"{sampler!r} gives {sampler.num_clips} clips per video; pass multi_view=True")
        self.annotations = annotations
        self.sampler = sampler
        self.transform = transform or v2.Compose([v2.ToDtype(torch.float32, scale=True), ToClip()])
        self.multi_view = multi_view
        self.on_error = on_error
        self.decoder_threads = decoder_threads
        self.frame_folder_fps = frame_folder_fps
        self.cache = cache

    @property
    def class_names(self) -> list[str]:
        return self.annotations.class_names

    @property
    def labels(self) -> list[int]:
        return [record.label for record in self.annotations.records]

    def __len__(self) -> int:
        return len(self.annotations.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int] | BrokenVideo:
        return self.get(index)

    def get(
        self, index: int, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, int, int] | BrokenVideo:
        """Item ``index``; a training sampler draws its frames from ``rng`` when given (the engine
        passes one seeded by (seed, epoch, index) for exact, worker-independent resumption)."""
        with _one_torch_thread():
            return self._get(index, rng)

    def _get(
        self, index: int, rng: np.random.Generator | None
    ) -> tuple[torch.Tensor, int, int] | BrokenVideo:
        record = self.annotations.records[index]
        try:
            clips = self._decode(record.path, rng)
        except BrokenVideoError as exc:
            return self._broken(index, exc)
        except (av.FFmpegError, OSError) as exc:
            return self._broken(
                index, BrokenVideoError(record.path, DECODE_ERROR, f"{type(exc).__name__}: {exc}")
            )
        views, label = [], record.label
        for frames in clips:
            view, label = self.transform(to_video(frames), record.label)
            views.append(view)
        if not self.multi_view:
            return views[0], int(label), index
        # A (crops, C, T, H, W) view holds several crops; keep them next to each other, clip-major.
        stacked = torch.cat([v if v.ndim == 5 else v.unsqueeze(0) for v in views])
        return stacked, int(label), index

    def _decode(self, path: Any, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frames of every clip: uint8 ``(num_clips, T, H, W, 3)``."""
        rng = rng if rng is not None else self._generator()
        if self.cache is not None:
            cached = self.cache.video(path, lambda: self._decode_all(path))
            indices = self.sampler.sample(len(cached.frames), rng, times=cached.times)
            frames = cached.frames[indices.reshape(-1)]
        else:
            with open_video(path, threads=self.decoder_threads, fps=self.frame_folder_fps) as video:
                indices = self.sampler.sample(video.num_frames, rng, times=video.frame_times)
                frames = video.get_frames(indices.reshape(-1))
        return frames.reshape(*indices.shape, *frames.shape[1:])

    def _decode_all(self, path: Any) -> DecodedVideo:
        with open_video(path, threads=self.decoder_threads, fps=self.frame_folder_fps) as video:
            return DecodedVideo(video.get_frames(np.arange(video.num_frames)), video.frame_times)

    def _generator(self) -> np.random.Generator | None:
        if not self.sampler.training:
            return None
        # Drawn from torch's generator, which the DataLoader seeds per worker and per epoch (and
        # torch.manual_seed seeds in the main process): one source of randomness, no state here.
        return np.random.default_rng(int(torch.randint(0, 2**63 - 1, ()).item()))

    def _broken(self, index: int, exc: BrokenVideoError) -> BrokenVideo:
        if self.on_error == "raise":
            raise exc
        logger.warning("skipping broken video %s: %s (%s)", exc.path, exc.category, exc.reason)
        return BrokenVideo(index, exc.path, exc.category, exc.reason)
