"""AccuracyMeter, the one accumulator of validation and `vast eval`, against counts made by a loop."""

import math

import numpy as np
import torch

from vast.engine.metrics import AccuracyMeter


def _loop_counts(scores: torch.Tensor, labels: torch.Tensor, num_classes: int, k: int):
    """Top-1 and top-k hits and the confusion matrix, one video at a time, by sorting its scores."""
    top1 = topk = 0
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for row, label in zip(scores.tolist(), labels.tolist()):
        ranked = sorted(range(num_classes), key=lambda c: -row[c])  # classes beyond num_classes ignored
        top1 += ranked[0] == label
        topk += label in ranked[:k]
        confusion[label, ranked[0]] += 1
    return top1, topk, confusion


def test_counts_over_batches_equal_a_loop_over_videos():
    rng = torch.Generator().manual_seed(0)
    meter = AccuracyMeter(num_classes=7)
    all_scores, all_labels = [], []
    for size in (5, 1, 9):  # batches of any size; a classifier with 2 outputs more than the classes
        scores, labels = torch.randn(size, 9, generator=rng), torch.randint(0, 7, (size,), generator=rng)
        meter.add(scores, labels, loss_sum=float(size))
        all_scores.append(scores[:, :7])
        all_labels.append(labels)
    top1, top5, confusion = _loop_counts(torch.cat(all_scores), torch.cat(all_labels), 7, 5)
    assert meter.videos == 15
    assert meter.top1 == 100.0 * top1 / 15 and meter.top5 == 100.0 * top5 / 15
    np.testing.assert_array_equal(meter.confusion, confusion)
    assert meter.loss == 1.0  # 15 summed over 15 videos


def test_hand_computed_values_and_per_class():
    meter = AccuracyMeter(num_classes=3, k=2)
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    meter.add(scores, torch.tensor([0, 1, 1, 0]))  # right, right, second-best, wrong twice
    assert meter.top1 == 50.0 and meter.top5 == 75.0  # k = 2 here
    per_class = meter.per_class(["a", "b", "c"])
    assert per_class["a"] == 50.0 and per_class["b"] == 50.0 and math.isnan(per_class["c"])


def test_fewer_classes_than_five_counts_top_k_over_all():
    meter = AccuracyMeter(num_classes=3)
    meter.add(torch.randn(4, 3), torch.tensor([0, 1, 2, 0]))
    assert meter.top5 == 100.0  # every class is among the top 3


def test_all_reduce_without_a_process_group_keeps_the_counts():
    meter = AccuracyMeter(num_classes=4)
    meter.add(torch.eye(4), torch.tensor([0, 1, 2, 2]), loss_sum=2.5)
    before = meter.confusion.copy()
    meter.all_reduce()
    np.testing.assert_array_equal(meter.confusion, before)
    assert meter.top1 == 75.0 and meter.loss == 2.5 / 4
