"""One accumulator of classification results, shared by validation during training and `vast eval`."""

from __future__ import annotations

import numpy as np
import torch

from vast.engine.distributed import all_reduce_sum


class AccuracyMeter:
    """Top-1 / top-k hits, a confusion matrix and a summed loss over batches of scores.

    ``num_classes``: the classes counted; scores beyond them (a classifier with more outputs than the
    data set has classes) are ignored. Scores may be logits or probabilities: only their order counts.
    """

    def __init__(self, num_classes: int, k: int = 5) -> None:
        self.num_classes = num_classes
        self.k = min(k, num_classes)
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)  # true class x top-1 class
        self.topk_hits = 0
        self.loss_sum = 0.0

    def add(self, scores: torch.Tensor, labels: torch.Tensor, loss_sum: float = 0.0) -> None:
        """A batch: ``scores`` ``(B, >= num_classes)``, ``labels`` ``(B,)``; ``loss_sum`` its summed loss."""
        top = scores[:, : self.num_classes].topk(self.k, dim=-1).indices.cpu()
        labels = labels.cpu()
        self.topk_hits += int((top == labels[:, None]).any(dim=-1).sum())
        np.add.at(self.confusion, (labels.numpy(), top[:, 0].numpy()), 1)
        self.loss_sum += float(loss_sum)

    def all_reduce(self) -> None:
        """Sum every rank's counts into every rank's meter (nothing to do without a process group)."""
        counts = np.concatenate([self.confusion.ravel(), [self.topk_hits, self.loss_sum]])
        summed = all_reduce_sum(torch.from_numpy(counts.astype(np.float64))).numpy()  # one collective
        self.confusion = summed[:-2].round().astype(np.int64).reshape(self.confusion.shape)
        self.topk_hits = int(summed[-2].round())
        self.loss_sum = float(summed[-1])

    @property
    def videos(self) -> int:
        return int(self.confusion.sum())

    @property
    def top1(self) -> float:
        return 100.0 * float(np.trace(self.confusion)) / max(self.videos, 1)

    @property
    def top5(self) -> float:
        """Top-k accuracy, k = 5 unless there are fewer classes."""
        return 100.0 * self.topk_hits / max(self.videos, 1)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.videos, 1)

    def per_class(self, names: list[str]) -> dict[str, float]:
        """Top-1 % of each class (NaN for a class without videos)."""
        totals = self.confusion.sum(axis=1)
        return {
            name: 100.0 * self.confusion[i, i] / totals[i] if totals[i] else float("nan")
            for i, name in enumerate(names)
        }
