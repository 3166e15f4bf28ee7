"""Data sets and loaders built from a run configuration."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vast.data.annotations import Annotations, load_annotations
from vast.data.cache import shared_cache
from vast.data.dataset import VideoDataset, collate_videos, seed_worker
from vast.data.sampling import build_sampler
from vast.data.transforms import build_eval_transform, build_train_transform
from vast.engine.config import DataConfig
from vast.engine.distributed import DistInfo, ResumableSampler, ShardSampler
from vast.engine.preemption import ignore_stop_signals
from vast.errors import ConfigError


class EpochSeededDataset(Dataset):
    """Every random draw of item ``i`` in epoch ``e`` (frames, crop, augmentation) is a function of
    ``(seed, e, i)`` alone: the same in any worker, with any number of workers, and after a resume."""

    def __init__(self, dataset: VideoDataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        torch_seed, numpy_seed = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2)
        with torch.random.fork_rng(devices=[]):  # keep the caller's generator untouched
            # the CPU generator only: torch.manual_seed also queues a seed for every accelerator
            # backend, which records a stack trace each time and costs a fifth of a small clip's load
            torch.default_generator.manual_seed(int(torch_seed))
            return self.dataset.get(index, rng=np.random.default_rng(int(numpy_seed)))

    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names


def read_annotations(data: DataConfig, which: str) -> Annotations:
    """The annotations of ``data.train`` (``which="train"``) or ``data.val`` (``"val"``): for a data set
    with official splits, the training or the test subset of split ``data.split``."""
    path = getattr(data, which)
    if not path:
        raise ConfigError(f"data.{which} is empty: set it to an annotation file, e.g. --set data.{which}=PATH")
    return load_annotations(
        path,
        root=data.root or None,
        fmt=data.format,
        split=data.split or None,
        subset="train" if which == "train" else "test",
    )


def build_train_dataset(data: DataConfig, seed: int, annotations: Annotations | None = None) -> EpochSeededDataset:
    annotations = annotations or read_annotations(data, "train")
    flip_pairs = [tuple(p) for p in data.flip_pairs] if data.flip_pairs else None
    transform = build_train_transform(
        data.crop_size,
        scale=(data.min_scale, 1.0),
        short_side_range=tuple(data.train_short_side) if data.train_short_side else None,
        hflip=data.flip,
        flip_label_pairs=flip_pairs,
        rand_augment_ops=data.randaugment_ops,
        rand_augment_magnitude=data.randaugment_magnitude,
        random_erasing=data.random_erasing,
        mean=data.mean,
        std=data.std,
    )
    sampler = build_sampler(data.sampler, data.num_frames, data.stride, training=True, fps=data.fps)
    cache = shared_cache(data.cache_mb)
    dataset = VideoDataset(annotations, sampler, transform, on_error=data.on_error, cache=cache)
    return EpochSeededDataset(dataset, seed)


def eval_transform(data: DataConfig, crops: int = 1) -> Any:
    """The run's evaluation transform (resize the short side, ``crops`` crops, normalise), shared by
    evaluation, streaming and early recognition so that they see clips alike."""
    return build_eval_transform(
        data.crop_size, short_side=data.short_side or None, num_crops=crops, mean=data.mean, std=data.std
    )


def build_eval_dataset(
    data: DataConfig, annotations: Annotations | None = None, clips: int = 1, crops: int = 1
) -> VideoDataset:
    """The validation / test set with ``clips`` x ``crops`` views per video (``1 x 1``: single clip)."""
    if crops not in (1, 3):
        raise ConfigError(f"test crops must be 1 or 3 (centre, or three crops along the long side); got {crops}")
    annotations = annotations or read_annotations(data, "val")
    transform = eval_transform(data, crops)
    sampler = build_sampler(
        data.sampler, data.num_frames, data.stride, training=False, num_clips=clips, fps=data.fps
    )
    # Evaluation never raises on a broken video: it is counted as missing and reported.
    return VideoDataset(
        annotations,
        sampler,
        transform,
        multi_view=clips * crops > 1,
        on_error="skip",
        cache=shared_cache(data.cache_mb),
    )


def train_loader(
    dataset: EpochSeededDataset,
    batch_size: int,
    workers: int,
    dist: DistInfo,
    seed: int,
    epoch: int,
    skip: int = 0,
) -> DataLoader:
    """Loader of one epoch: the epoch's shuffled shard of this rank, minus ``skip`` already-seen samples."""
    shard = DistributedSampler(
        dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=seed, drop_last=True
    )
    shard.set_epoch(epoch)
    dataset.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ResumableSampler(shard, skip),
        num_workers=workers,
        collate_fn=collate_videos,
        drop_last=True,
        pin_memory=dist.device.type == "cuda",
        persistent_workers=False,
        worker_init_fn=_engine_worker,
        # The workers' seeds come from this generator, never from the global one, so creating a
        # loader does not shift the model's random stream (exact resume).
        generator=torch.Generator().manual_seed(seed + epoch),
    )


def _engine_worker(worker_id: int) -> None:
    """Loader workers are seeded, and leave stop signals to the training process (which shuts them down)."""
    seed_worker(worker_id)
    ignore_stop_signals()


def eval_loader(dataset: VideoDataset, batch_size: int, workers: int, dist: DistInfo) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), dist.rank, dist.world_size),
        num_workers=workers,
        collate_fn=collate_videos,
        pin_memory=dist.device.type == "cuda",
        worker_init_fn=_engine_worker,
        generator=torch.Generator().manual_seed(0),
    )

