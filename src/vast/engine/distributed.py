"""Data-parallel training under ``torchrun``: process group, sharding, metric reduction.

``torchrun --nproc_per_node N -m vast train RECIPE`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``;
without them everything runs as a single process with rank 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA (this process's local GPU) when available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            from vast.errors import ConfigError

            raise ConfigError("train.device is cuda but no CUDA GPU is visible; use --set train.device=cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the process group that torchrun describes (gloo on CPU, NCCL on GPU), if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if attempt is None:
            dist.init_process_group(backend=backend)
        else:
            # torchrun keeps its store across restarts: without a prefix of their own, restarted ranks
            # can read the addresses a killed rank published and fail to connect (gloo: "Connection
            # refused"); each attempt gets keys of its own.
            store, rank, world_size = next(dist.rendezvous("env://"))
            store = dist.PrefixStore(f"vast/attempt_{attempt}/", store)
            dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size)
    return DistInfo(rank, world_size, local_rank, device)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all ranks (a no-op in a single process); CPU tensors work under NCCL too."""
    if not dist.is_initialized():
        return values
    device = values.device
    if dist.get_backend() == "nccl" and device.type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    summed = values.to(device, copy=True)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM)
    return summed.to(values.device)


def all_gather_objects(item: Any) -> list[Any]:
    """``item`` of every rank, in rank order (``[item]`` in a single process)."""
    if not dist.is_initialized():
        return [item]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, item)
    return gathered


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


class ShardSampler(Sampler[int]):
    """This rank's share of ``0 .. size-1`` (every ``world_size``-th index), unshuffled and unpadded:
    evaluation counts every video exactly once across ranks."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableSampler(Sampler[int]):
    """Wraps an epoch-seeded sampler (``DistributedSampler``) and skips the first ``skip`` indices,
    so a run resumed in the middle of an epoch sees exactly the samples it had not seen yet."""

    def __init__(self, base: Sampler[int], skip: int = 0) -> None:
        self.base = base
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        indices = list(self.base)
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return max(len(self.base) - self.skip, 0)  # type: ignore[arg-type]
