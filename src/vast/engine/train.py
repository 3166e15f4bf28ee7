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

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.utils import ModelEmaV3, random_seed
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from vast.data.dataset import BrokenVideoLog
from vast.engine import reporting
from vast.engine.checkpoint import (
    CHECKPOINT_VERSION,
    capture_rng_state,
    check_writable,
    keep_snapshot,
    load_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    timed_save,
)
from vast.engine.config import RunConfig, save_config
from vast.engine.data import build_eval_dataset, build_train_dataset, eval_loader, read_annotations, train_loader
from vast.engine.distributed import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    init_distributed,
    shutdown_distributed,
)
from vast.engine.evaluate import EvalResult, LoadedRun, evaluate, write_eval_report
from vast.engine.metrics import AccuracyMeter
from vast.engine.mixing import build_mixup, training_loss
from vast.engine.optimisation import build_optimizer, build_scheduler, steps_per_epoch
from vast.engine.preemption import StopSignals, TrainingStopped
from vast.engine.run_folder import move_earlier_run_aside, own_last_state, resumed_config
from vast.engine.runtime import apply_training_options, as_model_input, autocast_context, resolve_amp, unwrap
from vast.errors import CheckpointError, ConfigError, VastError
from vast.models import create_model
from vast.models.saved_options import pin_options

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
    test: EvalResult | None = None  # the multi-view test of the final model (data.test_clips x test_crops)


class Trainer:
    """Trains ``config`` (never changed: the trainer works on a copy); ``resume`` is a checkpoint file or
    run folder to continue from. Without it, the output folder's own ``last.pt`` is continued when it
    holds a run of the same configuration (``train.auto_resume``); ``restart`` moves an earlier run in
    the folder aside and starts over."""

    def __init__(
        self, config: RunConfig, resume: str | Path | None = None, quiet: bool = False, restart: bool = False
    ) -> None:
        self.quiet = quiet
        self.dist: DistInfo = init_distributed(config.train.device)
        config = self._resolved(config)
        state = load_checkpoint(resume) if resume is not None else None if restart else own_last_state(config)
        self.config = config = resumed_config(config, state) if state is not None else config
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        self.output_dir = Path(config.train.output_dir)
        if self.dist.is_main:
            check_writable(self.output_dir)
            remove_stale_temporaries(self.output_dir)
            if restart:
                move_earlier_run_aside(self.output_dir)
        barrier()
        random_seed(config.train.seed, self.dist.rank)  # timm: Python, NumPy and torch, seed + rank
        self._build_data()
        self.model = self._build_model()
        self._build_optimisation()
        self.epoch = 0
        self.batches_done_in_epoch = 0  # data batches consumed in the current epoch
        self.global_step = 0  # optimiser steps
        self.best_top1 = -1.0
        self.history: list[dict[str, float]] = []
        self.broken = BrokenVideoLog()
        self.signals: StopSignals | None = None  # while fit() runs: the stop signals received
        self.last_write = time.monotonic()  # of last.pt, for train.checkpoint_minutes
        if state is not None:
            self._restore(state)

    # ---- setup -----------------------------------------------------------------------------------

    def _resolved(self, config: RunConfig) -> RunConfig:
        """A copy of ``config`` with what it leaves to the run decided: the AMP mode, the model options."""
        config = copy.deepcopy(config)
        config.model.options = pin_options(config.model.name, config.model.options)  # saved runs name them
        config.train.amp = resolve_amp(config.train.amp, self.dist.device)
        if config.train.amp == "fp16" and self.dist.device.type != "cuda":
            raise ConfigError("train.amp=fp16 needs a CUDA GPU; use bf16 on the CPU")
        return config

    def _build_data(self) -> None:
        cfg = self.config
        annotations = read_annotations(cfg.data, "train")
        self.class_names = list(annotations.class_names) or [
            f"class_{i}" for i in range(max(r.label for r in annotations.records) + 1)
        ]  # a list file without a class-name file: number the classes
        self.train_set = build_train_dataset(cfg.data, cfg.train.seed, annotations)
        self.val_set = build_eval_dataset(cfg.data) if cfg.data.val else None
        self.num_classes = cfg.model.num_classes or len(self.class_names)
        if self.num_classes < len(self.class_names):
            raise ConfigError(
                f"model.num_classes={self.num_classes} but the training annotations have "
                f"{len(self.class_names)} classes"
            )

    def _build_model(self) -> nn.Module:
        cfg = self.config
        model = create_model(
            cfg.model.name, num_classes=self.num_classes, checkpoint_path=cfg.model.init_checkpoint, **cfg.model.options
        )
        model = model.to(self.dist.device)
        if self.dist.enabled and self.dist.device.type == "cuda":  # BatchNorm statistics over the global batch
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        apply_training_options(
            model, cfg.model.name, grad_checkpointing=cfg.train.grad_checkpointing, memory_lean=cfg.train.memory_lean
        )
        if self.dist.enabled:
            model = DistributedDataParallel(
                model, device_ids=[self.dist.device.index] if self.dist.device.type == "cuda" else None
            )
        return torch.compile(model) if cfg.train.compile else model

    def _build_optimisation(self) -> None:
        """Optimiser (timm's factory), per-step cosine schedule with warmup, loss scaler, EMA, mixup, loss."""
        cfg = self.config
        self.steps_per_epoch = steps_per_epoch(len(self.train_set), self.dist.world_size, cfg)
        plain = unwrap(self.model)
        self.optimizer = build_optimizer(plain, cfg, self.dist.world_size)
        self.scheduler = build_scheduler(self.optimizer, cfg, self.steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda") if cfg.train.amp == "fp16" else None
        self.ema = ModelEmaV3(plain, decay=cfg.train.ema_decay) if cfg.train.ema else None
        self.mixup = build_mixup(cfg.train, self.num_classes)
        self.criterion = training_loss(self.mixup, cfg.train.label_smoothing)

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
        seconds = time.perf_counter() - start
        test = self.test()
        barrier()
        if self.dist.is_main:
            reporting.write_training_report(
                self.output_dir, cfg, train_videos=len(self.train_set), num_classes=len(self.class_names),
                epochs=self.epoch, steps=self.global_step, seconds=seconds,
                where=f"{self.dist.device} x {self.dist.world_size} process(es)", broken=self.broken.count,
                history=self.history, best_top1=self.best_top1, test=test,
            )  # fmt: skip
        last_top1 = self.history[-1]["top1"] if self.history else 0.0
        return TrainResult(
            self.output_dir, max(self.best_top1, 0.0), last_top1, self.epoch, self.global_step, seconds,
            self.broken.count, list(self.history), is_main=self.dist.is_main, test=test,
        )  # fmt: skip

    def _reached_max_steps(self) -> bool:
        return 0 < self.config.train.max_steps <= self.global_step

    def _train_epoch(self, log: reporting.MetricsLogger | None) -> None:
        cfg = self.config
        accum = cfg.optim.accum_steps
        total_batches = self.steps_per_epoch * accum
        skip = self.batches_done_in_epoch * cfg.train.batch_size  # resumed mid-epoch: the batches done
        loader = train_loader(self.train_set, cfg.train.batch_size, cfg.data.num_workers, self.dist, cfg.train.seed,
                              self.epoch, skip=skip)  # fmt: skip
        self.model.train()
        bar = tqdm(total=total_batches, initial=self.batches_done_in_epoch, desc=f"epoch {self.epoch + 1}/"
                   f"{cfg.train.epochs}", disable=self.quiet or not self.dist.is_main, dynamic_ncols=True,
                   leave=False)  # fmt: skip
        window = reporting.Throughput()
        for batch in window.timed(loader):
            if self.batches_done_in_epoch >= total_batches or self._reached_max_steps():
                break
            self.broken.add(batch.broken)
            loss_value = self._forward_backward(batch)
            self.batches_done_in_epoch += 1
            window.clips += len(batch.labels) * self.dist.world_size
            bar.update(1)
            if self.batches_done_in_epoch % accum:
                continue  # gradients accumulate
            self._optimizer_step()
            lr = self.optimizer.param_groups[0]["lr"]
            if log is not None and self.global_step % max(cfg.train.log_every, 1) == 0:
                epoch = self.epoch + self.batches_done_in_epoch / total_batches
                row = {"step": self.global_step, "epoch": epoch, "loss": loss_value, "lr": lr, **window.take()}
                log.log(row, self.global_step, prefix="train/")
            bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", refresh=False)
            self._checkpoint_or_stop()  # after the step's log row: a resumed run logs from the next step
        bar.close()
        if self.broken.count:
            _logger.warning(self.broken.summary("skipped"))

    def _forward_backward(self, batch: Any) -> float:
        cfg = self.config
        device = self.dist.device
        clips = batch.clips.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        empty = clips.numel() == 0 or (self.mixup is not None and clips.shape[0] < 2)  # mixup needs a pair
        if self.dist.enabled:
            # A rank without clips cannot join DDP's gradient all-reduce, and the other ranks would wait on
            # it forever (or pair their reduction with its next batch): every rank skips the batch together.
            empty = bool(all_reduce_sum(torch.tensor([float(empty)], device=device)).item())
        if empty:
            return float("nan")
        clips, targets = self.mixup(clips, labels) if self.mixup is not None else (clips, labels)
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
        meter, missing = AccuracyMeter(self.num_classes), BrokenVideoLog()
        # Ranks may hold one video more or less: they agree on a stop only over the batches all of them have.
        common = -(-(len(self.val_set) // self.dist.world_size) // batch_size)
        bar = tqdm(loader, desc="validate", disable=self.quiet or not self.dist.is_main, leave=False)
        for index, batch in enumerate(bar):
            if self.signals is not None and index < common and self._agree(self.signals.received is not None)[0]:
                self.model.train()
                return None
            missing.add(batch.broken)
            if batch.labels.numel() == 0:
                continue
            labels = batch.labels.to(self.dist.device)
            with autocast_context(self.dist.device, cfg.train.amp):
                logits = model(as_model_input(model, batch.clips.to(self.dist.device))).float()
            meter.add(logits, labels, float(nn.functional.cross_entropy(logits, labels, reduction="sum")))
        meter.all_reduce()
        self.model.train()
        return {"loss": meter.loss, "top1": meter.top1, "top5": meter.top5, "videos": meter.videos,
                "missing": missing.count}  # fmt: skip

    def test(self) -> EvalResult | None:
        """The multi-view test of the final weights (the EMA weights when EMA is on) on the validation
        set with ``data.test_clips`` x ``data.test_crops`` views, as PySlowFast's test phase; rank 0,
        written beside the single-clip validation (``eval_<views>.json``, ``confusion_<views>.png``).
        None when the recipe asks for one view only (validation already gave it), there is no
        validation set, or the run stopped before its last epoch (``train.max_steps``)."""
        data = self.config.data
        final = self.epoch >= self.config.train.epochs
        if self.val_set is None or data.test_clips * data.test_crops == 1 or not final or not self.dist.is_main:
            return None
        model = unwrap(self.ema.module if self.ema is not None else self.model)
        run = LoadedRun(model, self.config, self.class_names, self.output_dir / "last.pt",
                        "ema" if self.ema is not None else "model")  # fmt: skip
        batch_size = self.config.train.eval_batch_size or self.config.train.batch_size
        model.eval()
        try:
            result = evaluate(run, clips=data.test_clips, crops=data.test_crops, batch_size=batch_size,
                              workers=data.num_workers, progress=not self.quiet)  # fmt: skip
        finally:
            self.model.train()
        write_eval_report(result, self.class_names, self.output_dir)
        if not self.quiet:
            tqdm.write(f"test of the final model, {result.views} views: top-1 {result.top1:.2f} %, "
                       f"top-5 {result.top5:.2f} %")  # fmt: skip
        return result


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
