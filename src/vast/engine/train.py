"""The training loop: one :class:`Trainer` per run.

What it does, in order: join the process group (torchrun), seed, build data, model, optimiser
(timm's factory: no weight decay on norms, biases and the affine maps), cosine schedule with linear
warmup (timm, per optimiser step), EMA (timm), mixup/cutmix and label smoothing (timm); then epochs of
steps with AMP, gradient accumulation and clipping, single-clip validation, atomic ``last.pt`` /
``best.pt`` checkpoints, CSV + TensorBoard logs and, at the end, ``report.md`` with PNG curves.

A resumed run continues exactly: the data order and every augmentation are functions of
(seed, epoch, index), the loader's worker seeds come from their own generator, and the checkpoint
holds every random generator the step draws from.
"""

from __future__ import annotations

import contextlib
import logging
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
    atomic_save,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
)
from vast.engine.config import RunConfig, config_from_dict, save_config
from vast.engine.data import (
    build_eval_dataset,
    build_train_dataset,
    eval_loader,
    read_annotations,
    train_loader,
)
from vast.engine.distributed import DistInfo, all_reduce_sum, barrier, init_distributed, shutdown_distributed
from vast.errors import CheckpointError, ConfigError, VastError
from vast.models import create_model

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


class Trainer:
    """Trains ``config``; ``resume`` is a checkpoint file or run folder to continue from."""

    def __init__(self, config: RunConfig, resume: str | Path | None = None, quiet: bool = False) -> None:
        self.quiet = quiet
        self.resume_state: dict[str, Any] | None = None
        if resume is not None:
            self.resume_state = load_checkpoint(resume)
            config = self._resumed_config(config, self.resume_state)
        self.config = config
        self.dist: DistInfo = init_distributed(config.train.device)
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        config.train.amp = resolve_amp(config.train.amp, self.dist.device)
        if config.train.amp == "fp16" and self.dist.device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA GPU; use bf16 on the CPU")
        self.output_dir = Path(config.train.output_dir)
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
        """The checkpoint's configuration, with the run length and output folder the caller asks for."""
        saved = config_from_dict(state["config"])
        saved.train.epochs = config.train.epochs
        saved.train.max_steps = config.train.max_steps
        saved.train.output_dir = config.train.output_dir
        saved.train.device = config.train.device
        saved.data.num_workers = config.data.num_workers
        return saved

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
        return {
            "version": CHECKPOINT_VERSION,
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "rng": capture_rng_state(),
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
        restore_rng_state(state["rng"])
        _logger.info("resumed at epoch %d, step %d", self.epoch, self.global_step)

    def save(self, name: str = "last.pt") -> Path | None:
        if not self.dist.is_main:
            return None
        return atomic_save(self.state_dict(), self.output_dir / name)

    # ---- the loop --------------------------------------------------------------------------------

    def fit(self) -> TrainResult:
        cfg = self.config
        start = time.perf_counter()
        if self.dist.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.output_dir / "config.yaml")
        train_log = reporting.MetricsLogger(self.output_dir, "train") if self.dist.is_main else None
        val_log = reporting.MetricsLogger(self.output_dir, "val", tensorboard=False) if self.dist.is_main else None
        try:
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
        self.epoch += 1
        self.batches_done_in_epoch = 0
        every = cfg.train.eval_every
        if self.val_set is not None and ((every > 0 and self.epoch % every == 0) or self.epoch == cfg.train.epochs):
            metrics = self.validate()
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
    def validate(self) -> dict[str, float]:
        """Single-clip validation (one centre clip, one centre crop per video) of the current
        weights (the EMA weights when EMA is on), reduced over all ranks."""
        cfg = self.config
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        batch_size = cfg.train.eval_batch_size or cfg.train.batch_size
        loader = eval_loader(self.val_set, batch_size, cfg.data.num_workers, self.dist)
        totals = torch.zeros(4, dtype=torch.float64)  # loss sum, top-1 hits, top-5 hits, videos
        missing = BrokenVideoLog()
        for batch in tqdm(loader, desc="validate", disable=self.quiet or not self.dist.is_main, leave=False):
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


def train(config: RunConfig, resume: str | Path | None = None, quiet: bool = False) -> TrainResult:
    """Train ``config`` (continuing from ``resume`` if given) and return the result summary.

    A process group the run joins itself (under torchrun) is destroyed when it ends, also on an
    error, so that every process exits cleanly; a group the caller set up is left to the caller.
    """
    joins_group = not torch.distributed.is_initialized()
    try:
        return Trainer(config, resume=resume, quiet=quiet).fit()
    finally:
        if joins_group:
            shutdown_distributed()
