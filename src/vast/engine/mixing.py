"""timm's mixup / cutmix on video clips, and the loss that goes with it."""

from __future__ import annotations

import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import nn

from vast.errors import ConfigError


class VideoMixup:
    """timm's :class:`~timm.data.Mixup` on ``(B, C, T, H, W)`` clips: the frames folded into channels,
    so that a cutmix box spans every frame of a clip, and mixing pairs the clips of a batch."""

    def __init__(self, mixup: float, cutmix: float, label_smoothing: float, num_classes: int) -> None:
        self.mix = Mixup(mixup_alpha=mixup, cutmix_alpha=cutmix, label_smoothing=label_smoothing,
                         num_classes=num_classes)  # fmt: skip

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixed clips and soft targets; a batch left odd by a dropped broken video loses its last clip."""
        if clips.shape[0] % 2:
            clips, labels = clips[:-1], labels[:-1]
        b, c, t, h, w = clips.shape
        mixed, targets = self.mix(clips.reshape(b, c * t, h, w), labels)
        return mixed.reshape(b, c, t, h, w), targets


def build_mixup(train: object, num_classes: int) -> VideoMixup | None:
    """The mixup of a ``TrainConfig`` (``train.mixup`` / ``train.cutmix`` alphas), or None when both are 0."""
    if train.mixup <= 0 and train.cutmix <= 0:
        return None
    if train.batch_size % 2:
        size = train.batch_size
        raise ConfigError(f"mixup/cutmix pair the clips of a batch: set an even train.batch_size, not {size}")
    return VideoMixup(train.mixup, train.cutmix, train.label_smoothing, num_classes)


def training_loss(mixup: VideoMixup | None, label_smoothing: float) -> nn.Module:
    """Soft-target cross-entropy after mixup (its targets carry the smoothing), else cross-entropy."""
    return SoftTargetCrossEntropy() if mixup is not None else nn.CrossEntropyLoss(label_smoothing=label_smoothing)
