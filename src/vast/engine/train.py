"""The training loop: one :class:`Trainer` per run.

What it does, in order: join the process group (torchrun), seed, build data, model, optimiser
(timm's factory: no weight decay on norms, biases and the affine maps), cosine schedule with linear
warmup (timm, per optimiser step), EMA (timm), mixup/cutmix and label smoothing (timm); then epochs of
steps with AMP, gradient accumulation and clipping, single-clip validation, atomic ``last.pt`` /
``best.pt`` checkpoints, CSV + TensorBoard logs and, at the end, ``report.md`` with PNG curves.

A resumed run continues exactly: the data order and every augmentation are functions of
(seed, epoch, index), the loader's worker seeds come from their own generator, and the checkpoint
holds every random generator the step draws from (each rank's, under DDP) and the position in the epoch.

Preemption (docs/training.md): a run whose output folder holds a ``last.pt`` of the same configuration
continues it (``train.auto_resume``); ``train.checkpoint_every`` / ``train.checkpoint_minutes`` write
``last.pt`` mid-epoch; SIGTERM, SIGUSR1 or SIGINT finish the current step, write ``last.pt`` and raise
:class:`~vast.engine.preemption.TrainingStopped` (exit code 75 from the CLI).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vast.data.dataset import BrokenVideoLog
from vast.engine import reporting
from vast.engine.checkpoint import (
    CHECKPOINT_VERSION,
    SNAPSHOT_GLOB,
    capture_rng_state,
    check_writable,
    keep_snapshot,
    load_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    timed_save,
)
from vast.engine.config import RUN_LENGTH_AND_PLACE, RunConfig, config_differences, config_from_dict, save_config
from vast.engine.data import (
    build_eval_dataset,
    build_train_dataset,
    eval_loader,
    read_annotations,
    train_loader,
)
from vast.engine.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from vast.engine.preemption import StopSignals, TrainingStopped
from vast.errors import CheckpointError, ConfigError, VastError
from vast.models import create_model
from vast.models.saved_options import pin_options, saved_options

_logger = logging.getLogger(__name__)


class NonFiniteLossError(VastError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    output_dir: Path
    best_top1: float = 0.0
    last_top1: float = 0.0
    epochs_done: int = 0
    steps_done: int = 0
    seconds: float = 0.0
    skipped_videos: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    is_main: bool = True  # rank 0 (the process that writes the run folder)


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto``: bf16 where the hardware runs it fast (AVX512-BF16 / AMX CPUs, Ampere+ GPUs), else none."""
    if amp != "auto":
        return amp
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "none"
    return "bf16" if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else "none"


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and torch.compile wrappers."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)


def as_model_input(model: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Clips ``(B, C, T, H, W)`` as the model takes them: image models (AST) get ``(B, C, H, W)``
    from one-frame clips (ImageNet images are read as one-frame videos)."""
    if getattr(unwrap(model), "video", True):
        return clips
    if clips.shape[2] != 1:
        raise ConfigError(f"an image model takes one frame per sample; set data.num_frames=1 (got {clips.shape[2]})")
    return clips[:, :, 0]


def accuracy_counts(logits: torch.Tensor, labels: torch.Tensor, k: int = 5) -> tuple[int, int]:
    """Numbers of top-1 and top-k hits."""
    k = min(k, logits.shape[-1])
    top = logits.topk(k, dim=-1).indices
    hits = top == labels[:, None]
    return int(hits[:, 0].sum()), int(hits.any(dim=-1).sum())


def _saved_config(state: dict[str, Any]) -> RunConfig:
    """A checkpoint's configuration, its model options as it was trained with (saved_options)."""
    saved = config_from_dict(state["config"])
    saved.model.options = saved_options(saved.model.name, saved.model.options)
    return saved


class Trainer:
    """Trains ``config``; ``resume`` is a checkpoint file or run folder to continue from. Without it,
    the output folder's own ``last.pt`` is continued when it holds a run of the same configuration
    (``train.auto_resume``); ``restart`` moves an earlier run in the folder aside and starts over."""

    def __init__(
        self, config: RunConfig, resume: str | Path | None = None, quiet: bool = False, restart: bool = False
    ) -> None:
        self.quiet = quiet
        config = copy.deepcopy(config)  # the caller's config is left as it is
        config.model.options = pin_options(config.model.name, config.model.options)  # saved runs name them
        self.dist: DistInfo = init_distributed(config.train.device)
        config.train.amp = resolve_amp(config.train.amp, self.dist.device)
        if config.train.amp == "fp16" and self.dist.device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA GPU; use bf16 on the CPU")
        self.resume_state: dict[str, Any] | None = None
        if resume is not None:
            self.resume_state = load_checkpoint(resume)
        elif not restart:
            self.resume_state = self._own_last_state(config)
        if self.resume_state is not None:
            config = self._resumed_config(config, self.resume_state)
        self.config = config
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        self.output_dir = Path(config.train.output_dir)
        if self.dist.is_main:
            check_writable(self.output_dir)
            remove_stale_temporaries(self.output_dir)
            if restart:
                self._move_earlier_run_aside()
        barrier()
        self._seed(config.train.seed + self.dist.rank)

        train_annotations = read_annotations(config.data, "train")
        self.class_names = list(train_annotations.class_names) or [
            f"class_{i}" for i in range(max(r.label for r in train_annotations.records) + 1)
        ]  # a list file without a class-name file: number the classes
        self.train_set = build_train_dataset(config.data, config.train.seed, train_annotations)
        self.val_set = build_eval_dataset(config.data) if config.data.val else None
        num_classes = config.model.num_classes or len(self.class_names)
        if num_classes < len(self.class_names):
            raise ConfigError(
                f"model.num_classes={num_classes} but the training annotations have {len(self.class_names)} classes"
            )
        self.num_classes = num_classes

        self.model = self._build_model()
        self.steps_per_epoch = self._steps_per_epoch()
        self.optimizer = create_optimizer_v2(
            unwrap(self.model),
            opt=config.optim.name,
            lr=self._scaled_lr(),
            weight_decay=config.optim.weight_decay,
            momentum=config.optim.momentum,
        )
        self.scheduler, _ = create_scheduler_v2(
            self.optimizer,
            sched="cosine",
            num_epochs=config.train.epochs,
            warmup_epochs=config.optim.warmup_epochs,
            warmup_lr=config.optim.warmup_lr,
            min_lr=config.optim.min_lr,
            step_on_epochs=False,
            updates_per_epoch=self.steps_per_epoch,
            warmup_prefix=True,
        )
        self.scaler = torch.amp.GradScaler("cuda") if config.train.amp == "fp16" else None
        self.ema = ModelEmaV3(unwrap(self.model), decay=config.train.ema_decay) if config.train.ema else None
        self.mixup = self._build_mixup()
        if self.mixup is not None:
            self.criterion: nn.Module = SoftTargetCrossEntropy()
        else:
            self.criterion = nn.CrossEntropyLoss(label_smoothing=config.train.label_smoothing)

        self.epoch = 0
        self.batches_done_in_epoch = 0  # data batches consumed in the current epoch
        self.global_step = 0  # optimiser steps
        self.best_top1 = -1.0
        self.history: list[dict[str, float]] = []
        self.broken = BrokenVideoLog()
        if self.resume_state is not None:
            self._restore(self.resume_state)
            self.resume_state = None

    # ---- setup -----------------------------------------------------------------------------------

    @staticmethod
    def _resumed_config(config: RunConfig, state: dict[str, Any]) -> RunConfig:
        """The checkpoint's configuration, with the run length, place and checkpointing the caller asks for
        (an explicit resume may also change ``train.epochs``: the schedule then stretches from where it is)."""
        saved = _saved_config(state)
        for key in (*RUN_LENGTH_AND_PLACE, "train.epochs"):
            section, name = key.split(".")
            setattr(getattr(saved, section), name, getattr(getattr(config, section), name))
        return saved

    @staticmethod
    def _own_last_state(config: RunConfig) -> dict[str, Any] | None:
        """``<output_dir>/last.pt`` when auto-resume is on and it holds a run of this configuration."""
        last = Path(config.train.output_dir) / "last.pt"
        if not config.train.auto_resume or not last.is_file():
            return None
        state = load_checkpoint(last)
        saved = _saved_config(state)
        differing = config_differences(saved, config)
        if differing:
            shown = ", ".join(differing[:4]) + (f" and {len(differing) - 4} more" if len(differing) > 4 else "")
            raise ConfigError(
                f"{last} is a run of another configuration ({shown} differ); continue it with its own settings, "
                "start over with --restart, or choose another --output"
            )
        _logger.info("continuing the run in %s from its last.pt", last.parent)
        return state

    def _move_earlier_run_aside(self) -> None:
        """``--restart``: the folder's earlier checkpoints and logs go to ``replaced-<time>/``, not away."""
        names = ["last.pt", "best.pt", "train.csv", "val.csv", "report.md", "curves.png", "tb"]
        earlier = [self.output_dir / n for n in names if (self.output_dir / n).exists()]
        earlier += sorted(self.output_dir.glob(SNAPSHOT_GLOB))
        if not earlier:
            return
        stamp = time.strftime("replaced-%Y%m%d-%H%M%S")
        aside, count = self.output_dir / stamp, 1
        while aside.exists():  # two restarts within a second
            aside, count = self.output_dir / f"{stamp}-{count}", count + 1
        aside.mkdir()
        for path in earlier:
            shutil.move(str(path), str(aside / path.name))
        _logger.info("--restart: moved the earlier run's files to %s", aside)

    @staticmethod
    def _seed(seed: int) -> None:
        import random

        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _build_model(self) -> nn.Module:
        cfg = self.config
        model = create_model(
            cfg.model.name,
            num_classes=self.num_classes,
            checkpoint_path=cfg.model.init_checkpoint,
            **cfg.model.options,
        )
        if cfg.train.grad_checkpointing:
            if not hasattr(model, "set_grad_checkpointing"):
                name = cfg.model.name
                raise ConfigError(f"{name} has no activation checkpointing; set train.grad_checkpointing=false")
            model.set_grad_checkpointing(True)
        model = model.to(self.dist.device)
        if self.dist.enabled and self.dist.device.type == "cuda":  # BatchNorm statistics over the global batch
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        if cfg.train.memory_lean:
            if not hasattr(model, "set_memory_lean"):
                raise ConfigError(f"train.memory_lean is for AST / VAST models, not {cfg.model.name}; set it to false")
            model.set_memory_lean(True)
        if self.dist.enabled:
            model = DistributedDataParallel(
                model, device_ids=[self.dist.device.index] if self.dist.device.type == "cuda" else None
            )
        if cfg.train.compile:
            model = torch.compile(model)
        return model

    def _steps_per_epoch(self) -> int:
        cfg = self.config
        per_rank = len(self.train_set) // self.dist.world_size
        batches = per_rank // cfg.train.batch_size
        if batches < cfg.optim.accum_steps:
            raise ConfigError(
                f"{len(self.train_set)} training videos give {batches} batches of {cfg.train.batch_size} per "
                f"process, fewer than optim.accum_steps={cfg.optim.accum_steps}; lower train.batch_size"
            )
        return batches // cfg.optim.accum_steps

    def _scaled_lr(self) -> float:
        optim = self.config.optim
        if optim.base_batch_size <= 0:
            return optim.lr
        effective = self.config.train.batch_size * optim.accum_steps * self.dist.world_size
        return optim.lr * effective / optim.base_batch_size

    def _build_mixup(self) -> Mixup | None:
        train = self.config.train
        if train.mixup <= 0 and train.cutmix <= 0:
            return None
        if train.batch_size % 2:
            size = train.batch_size
            raise ConfigError(f"mixup/cutmix pair the clips of a batch: set an even train.batch_size, not {size}")
        return Mixup(
            mixup_alpha=train.mixup,
            cutmix_alpha=train.cutmix,
            label_smoothing=train.label_smoothing,
            num_classes=self.num_classes,
        )

    # ---- checkpoints -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint. Under DDP every rank must call it (it gathers each rank's random state)."""
        rng = capture_rng_state()
        return {
            "version": CHECKPOINT_VERSION,
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "rng": rng,
            "rng_per_rank": all_gather_objects(rng) if self.dist.enabled else [rng],
            "epoch": self.epoch,
            "batches_done_in_epoch": self.batches_done_in_epoch,
            "global_step": self.global_step,
            "best_top1": self.best_top1,
            "history": self.history,
            "config": self.config.to_dict(),
            "class_names": self.class_names,
            "model_name": self.config.model.name,
            "num_classes": self.num_classes,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            unwrap(self.model).load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None and state.get("ema"):
                self.ema.module.load_state_dict(state["ema"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise CheckpointError(f"the checkpoint does not match this run: {str(exc).splitlines()[0]}") from exc
        self.epoch = int(state["epoch"])
        self.batches_done_in_epoch = int(state["batches_done_in_epoch"])
        self.global_step = int(state["global_step"])
        self.best_top1 = float(state["best_top1"])
        self.history = list(state.get("history", []))
        per_rank = state.get("rng_per_rank") or []
        same_ranks = len(per_rank) == self.dist.world_size
        restore_rng_state(per_rank[self.dist.rank] if same_ranks else state["rng"])
        _logger.info("resumed at epoch %d, step %d", self.epoch, self.global_step)

    def save(self, name: str = "last.pt") -> Path | None:
        """Write checkpoint ``name`` (rank 0; every rank must call this). A write that fails on rank 0
        (a full disk) raises on every rank, so that no rank waits for the others forever."""
        state = self.state_dict()
        self.last_write = time.monotonic()
        path, error = None, None
        if self.dist.is_main:
            try:
                path, seconds, size = timed_save(state, self.output_dir / name)
                _logger.info(
                    "wrote %s: %.1f MB in %.2f s (step %d: %d epochs and %d batches done)",
                    name, size / 2**20, seconds, self.global_step, self.epoch, self.batches_done_in_epoch,
                )  # fmt: skip
                if name == "last.pt":
                    keep_snapshot(path, self.epoch, self.global_step, self.config.train.keep_last)
            except (CheckpointError, OSError) as exc:
                error = exc
        if error is not None:
            self._agree(True)
            raise error
        if self._agree(False)[0]:
            raise CheckpointError(f"rank 0 could not write {name}; see its error")
        return path

    # ---- the loop --------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        cfg = self.config
        start = time.perf_counter()
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.output_dir / "config.yaml")
        if self.dist.is_main and self.global_step > 0:  # rows logged after last.pt was written are redone
            for name in ("train.csv", "val.csv"):
                reporting.drop_rows_after(self.output_dir / name, self.global_step)
        train_log = reporting.MetricsLogger(self.output_dir, "train") if self.dist.is_main else None
        val_log = reporting.MetricsLogger(self.output_dir, "val", tensorboard=False) if self.dist.is_main else None
        self.last_write = time.monotonic()
        try:
            with StopSignals() as self.signals:
                while self.epoch < cfg.train.epochs and not self._reached_max_steps():
                    self._train_epoch(train_log)
                    if self._reached_max_steps() and self.batches_done_in_epoch > 0:
                        break  # stopped mid-epoch (max_steps): last.pt holds the exact position
                    self._end_epoch(val_log)
                self.save("last.pt")
        except KeyboardInterrupt:
            # Back to the last optimiser step: gradients of a half-accumulated step are lost.
            self.batches_done_in_epoch -= self.batches_done_in_epoch % cfg.optim.accum_steps
            self.save("last.pt")
            raise
        finally:
            # A NonFiniteLossError skips the save above: the last good last.pt stays on disk.
            for log in (train_log, val_log):
                if log is not None:
                    log.close()
        barrier()
        seconds = time.perf_counter() - start
        if self.dist.is_main:
            self._write_report(seconds)
        last_top1 = self.history[-1]["top1"] if self.history else 0.0
        return TrainResult(
            self.output_dir,
            max(self.best_top1, 0.0),
            last_top1,
            self.epoch,
            self.global_step,
            seconds,
            self.broken.count,
            list(self.history),
            is_main=self.dist.is_main,
        )

    def _reached_max_steps(self) -> bool:
        return 0 < self.config.train.max_steps <= self.global_step

    def _train_epoch(self, log: reporting.MetricsLogger | None) -> None:
        cfg = self.config
        accum = cfg.optim.accum_steps
        loader = train_loader(
            self.train_set,
            cfg.train.batch_size,
            cfg.data.num_workers,
            self.dist,
            cfg.train.seed,
            self.epoch,
            skip=self.batches_done_in_epoch * cfg.train.batch_size,
        )
        self.model.train()
        total_batches = self.steps_per_epoch * accum
        bar = tqdm(
            total=total_batches,
            initial=self.batches_done_in_epoch,
            desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}",
            disable=self.quiet or not self.dist.is_main,
            dynamic_ncols=True,
            leave=False,
        )
        window_clips, window_start, data_time = 0, time.perf_counter(), 0.0
        fetch_start = time.perf_counter()
        for batch in loader:
            if self.batches_done_in_epoch >= total_batches or self._reached_max_steps():
                break
            data_time += time.perf_counter() - fetch_start
            self.broken.add(batch.broken)
            loss_value = self._forward_backward(batch)
            self.batches_done_in_epoch += 1
            window_clips += len(batch.labels) * self.dist.world_size
            bar.update(1)
            if self.batches_done_in_epoch % accum == 0:
                self._optimizer_step()
                if log is not None and self.global_step % max(cfg.train.log_every, 1) == 0:
                    elapsed = time.perf_counter() - window_start
                    row = {
                        "step": self.global_step,
                        "epoch": self.epoch + self.batches_done_in_epoch / total_batches,
                        "loss": loss_value,
                        "lr": self.optimizer.param_groups[0]["lr"],
                        "clips_per_s": window_clips / max(elapsed, 1e-9),
                        "data_time_s": data_time,
                    }
                    log.log(row, self.global_step, prefix="train/")
                    window_clips, window_start, data_time = 0, time.perf_counter(), 0.0
                bar.set_postfix(
                    loss=f"{loss_value:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}", refresh=False
                )
                self._checkpoint_or_stop()  # after the step's log row: a resumed run logs from the next step
            fetch_start = time.perf_counter()
        bar.close()
        if self.broken.count:
            _logger.warning(self.broken.summary("skipped"))

    def _forward_backward(self, batch: Any) -> float:
        cfg = self.config
        device = self.dist.device
        clips = batch.clips.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        if self.mixup is not None and clips.shape[0] % 2:  # a broken video was dropped: mixup needs pairs
            clips, labels = clips[:-1], labels[:-1]
        empty = clips.numel() == 0
        if self.dist.enabled:
            # A rank without clips cannot join DDP's gradient all-reduce, and the other ranks would wait on
            # it forever (or pair their reduction with its next batch): every rank skips the batch together.
            empty = bool(all_reduce_sum(torch.tensor([float(empty)], device=device)).item())
        if empty:
            return float("nan")
        if self.mixup is not None:
            clips, targets = self._mix(clips, labels)
        else:
            targets = labels
        with autocast_context(device, cfg.train.amp):
            logits = self.model(as_model_input(self.model, clips))
            loss = self.criterion(logits.float(), targets) / cfg.optim.accum_steps
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"the training loss became {loss.item()} at epoch {self.epoch + 1}, step {self.global_step + 1}; "
                f"the last good checkpoint is kept in {self.output_dir / 'last.pt'}; lower optim.lr or set "
                f"optim.clip_grad"
            )
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        return float(loss.detach()) * cfg.optim.accum_steps

    def _checkpoint_or_stop(self) -> None:
        """At a step boundary: write ``last.pt`` when one is due, or write it and stop when a signal came.
        Under DDP the ranks agree first (one small all-reduce per step), so they stop at the same step."""
        train = self.config.train
        due = (train.checkpoint_every > 0 and self.global_step % train.checkpoint_every == 0) or (
            train.checkpoint_minutes > 0 and time.monotonic() - self.last_write >= 60 * train.checkpoint_minutes
        )
        stop, due = self._agree(self.signals.received is not None, due)
        if stop:
            self._save_and_stop()
        if due:
            self.save("last.pt")

    def _agree(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag true on every rank when it is true on any (one small all-reduce under DDP)."""
        if not self.dist.enabled:
            return flags
        summed = all_reduce_sum(torch.tensor([float(flag) for flag in flags]))
        return tuple(bool(value > 0) for value in summed)

    def _save_and_stop(self) -> None:
        self.save("last.pt")
        barrier()  # every rank leaves after rank 0 has written: a launcher stops the others at the first exit
        signal_name = self.signals.received or "a stop signal on another rank"
        raise TrainingStopped(signal_name, str(self.output_dir / "last.pt"), self.epoch, self.global_step)

    def _mix(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """timm's mixup/cutmix on video: frames folded into channels so a cutmix box spans all frames."""
        b, c, t, h, w = clips.shape
        mixed, targets = self.mixup(clips.reshape(b, c * t, h, w), labels)
        return mixed.reshape(b, c, t, h, w), targets

    def _optimizer_step(self) -> None:
        cfg = self.config
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        self.scheduler.step_update(num_updates=self.global_step)
        if self.ema is not None:
            self.ema.update(unwrap(self.model), step=self.global_step)

    def _end_epoch(self, log: reporting.MetricsLogger | None) -> None:
        cfg = self.config
        ended = self.epoch + 1
        every = cfg.train.eval_every
        metrics = None
        if self.val_set is not None and ((every > 0 and ended % every == 0) or ended == cfg.train.epochs):
            metrics = self.validate()
            if metrics is None:  # a stop signal during validation: last.pt is written before it, redone on resume
                self._save_and_stop()
        self.epoch = ended
        self.batches_done_in_epoch = 0
        if metrics is not None:
            row = {"epoch": self.epoch, "step": self.global_step, **metrics}
            self.history.append(row)
            if log is not None:
                log.log(row, self.global_step)
            if self.dist.is_main and not self.quiet:
                tqdm.write(
                    f"epoch {self.epoch}: single-clip val top-1 {metrics['top1']:.2f} %, "
                    f"top-5 {metrics['top5']:.2f} %, loss {metrics['loss']:.3f}"
                )
            improved = metrics["top1"] > self.best_top1
            if improved:
                self.best_top1 = metrics["top1"]
            self.save("last.pt")
            if improved:
                self.save("best.pt")
        else:
            self.save("last.pt")

    @torch.no_grad()
    def validate(self) -> dict[str, float] | None:
        """Single-clip validation (one centre clip, one centre crop per video) of the current
        weights (the EMA weights when EMA is on), reduced over all ranks; None when a stop signal
        came in the middle (during :meth:`fit`)."""
        cfg = self.config
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        batch_size = cfg.train.eval_batch_size or cfg.train.batch_size
        loader = eval_loader(self.val_set, batch_size, cfg.data.num_workers, self.dist)
        totals = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, videos
        missing = BrokenVideoLog()
        signals = getattr(self, "signals", None)
        # Ranks may hold one video more or less: they agree on a stop only over the batches all of them have.
        common = -(-(len(self.val_set) // self.dist.world_size) // batch_size)
        bar = tqdm(loader, desc="validate", disable=self.quiet or not self.dist.is_main, leave=False)
        for index, batch in enumerate(bar):
            if signals is not None and index < common and self._agree(signals.received is not None)[0]:
                self.model.train()
                return None
            missing.add(batch.broken)
            if batch.labels.numel() == 0:
                continue
            clips = batch.clips.to(self.dist.device)
            labels = batch.labels.to(self.dist.device)
            with autocast_context(self.dist.device, cfg.train.amp):
                logits = model(as_model_input(model, clips)).float()
            top1, top5 = accuracy_counts(logits, labels)
            loss = nn.functional.cross_entropy(logits, labels, reduction="sum")
            totals += torch.tensor([float(loss), top1, top5, len(labels)], dtype=torch.float64)
        totals = all_reduce_sum(totals)
        count = max(float(totals[3]), 1.0)
        self.model.train()
        return {
            "loss": float(totals[0]) / count,
            "top1": 100.0 * float(totals[1]) / count,
            "top5": 100.0 * float(totals[2]) / count,
            "videos": int(totals[3]),
            "missing": missing.count,
        }

    # ---- report ----------------------------------------------------------------------------------

    def _write_report(self, seconds: float) -> None:
        train_rows = reporting.read_csv(self.output_dir / "train.csv")
        val_rows = reporting.read_csv(self.output_dir / "val.csv")
        curves = reporting.plot_curves({self.config.model.name: (train_rows, val_rows)}, self.output_dir / "curves.png")
        cfg = self.config
        lines = [
            f"# Training report: {cfg.model.name}",
            "",
            f"- data: `{cfg.data.train}` ({len(self.train_set)} videos, {len(self.class_names)} classes); "
            f"validation `{cfg.data.val or '-'}`",
            f"- {self.epoch} epochs, {self.global_step} optimiser steps, {seconds:.0f} s on {self.dist.device} "
            f"x {self.dist.world_size} process(es)",
            f"- clip: {cfg.data.num_frames} frames ({cfg.data.sampler} sampling), {cfg.data.crop_size} px crop",
            f"- broken training videos skipped: {self.broken.count}",
            "",
            "## Validation (single clip, centre crop)",
            "",
            reporting.markdown_table(
                ["epoch", "top-1 %", "top-5 %", "loss"],
                [(int(r["epoch"]), f"{r['top1']:.2f}", f"{r['top5']:.2f}", f"{r['loss']:.3f}") for r in self.history],
            )
            if self.history
            else "no validation set",
            "",
            f"![curves]({curves.name})",
            "",
            f"Best single-clip top-1: {max(self.best_top1, 0.0):.2f} %. Checkpoints: `last.pt`, `best.pt`; "
            "multi-view testing: `vast eval best.pt --views 4x3`.",
            "",
        ]
        (self.output_dir / "report.md").write_text("\n".join(lines))


def train(
    config: RunConfig, resume: str | Path | None = None, quiet: bool = False, restart: bool = False
) -> TrainResult:
    """Train ``config`` (continuing from ``resume`` if given, else from the output folder's own
    ``last.pt`` of the same configuration unless ``restart``) and return the result summary.

    A process group the run joins itself (under torchrun) is destroyed when it ends, also on an
    error, so that every process exits cleanly; a group the caller set up is left to the caller.
    """
    joins_group = not torch.distributed.is_initialized()
    try:
        return Trainer(config, resume=resume, quiet=quiet, restart=restart).fit()
    finally:
        if joins_group:
            shutdown_distributed()
