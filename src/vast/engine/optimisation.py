"""The optimiser and its schedule: timm's optimiser factory (no weight decay on norms, biases and the
affine maps, which declare ``no_weight_decay``), the learning rate scaled to the effective batch, and a
cosine schedule with linear warmup stepped per optimiser step."""

from __future__ import annotations

import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from torch import nn

from vast.engine.config import RunConfig
from vast.errors import ConfigError


def steps_per_epoch(num_videos: int, world_size: int, cfg: RunConfig) -> int:
    """Optimiser steps per epoch: whole batches per process, then whole accumulation groups."""
    batches = num_videos // world_size // cfg.train.batch_size
    if batches < cfg.optim.accum_steps:
        raise ConfigError(
            f"{num_videos} training videos give {batches} batches of {cfg.train.batch_size} per "
            f"process, fewer than optim.accum_steps={cfg.optim.accum_steps}; lower train.batch_size"
        )
    return batches // cfg.optim.accum_steps


def scaled_lr(cfg: RunConfig, world_size: int) -> float:
    """``optim.lr`` scaled linearly to the effective batch (``optim.base_batch_size``; 0: not scaled)."""
    optim = cfg.optim
    if optim.base_batch_size <= 0:
        return optim.lr
    return optim.lr * cfg.train.batch_size * optim.accum_steps * world_size / optim.base_batch_size


def build_optimizer(model: nn.Module, cfg: RunConfig, world_size: int) -> torch.optim.Optimizer:
    optim = cfg.optim
    return create_optimizer_v2(model, opt=optim.name, lr=scaled_lr(cfg, world_size), weight_decay=optim.weight_decay,
                               momentum=optim.momentum)  # fmt: skip


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig, steps_per_epoch: int) -> Scheduler:
    """Cosine decay to ``optim.min_lr`` over ``train.epochs`` after ``optim.warmup_epochs`` of linear
    warmup from ``optim.warmup_lr``, updated at every optimiser step (``step_update``)."""
    optim = cfg.optim
    scheduler, _ = create_scheduler_v2(
        optimizer, sched="cosine", num_epochs=cfg.train.epochs, warmup_epochs=optim.warmup_epochs,
        warmup_lr=optim.warmup_lr, min_lr=optim.min_lr, step_on_epochs=False, updates_per_epoch=steps_per_epoch,
        warmup_prefix=True,
    )  # fmt: skip
    return scheduler
