"""Clip transforms: uint8 frames in, a normalised float clip ``(C, T, H, W)`` out.

The transforms are torchvision ``transforms.v2`` transforms working on a ``tv_tensors.Video`` of
shape ``(T, C, H, W)``: v2 draws random parameters once per call, so every frame of a clip gets the
same crop, the same RandAugment operations and the same erased box. A transform is called as
``transform(video, label)`` and returns ``(clip, label)``, which lets a horizontal flip swap the
labels of direction-sensitive classes (:class:`LabelAwareHorizontalFlip`); v2 passes the label
through every other transform untouched.

The factories :func:`build_train_transform` and :func:`build_eval_transform` give the usual recipes;
their output is a float32 ``(C, T, H, W)`` clip, or ``(3, C, T, H, W)`` for three-crop testing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_video(frames: np.ndarray | torch.Tensor) -> tv_tensors.Video:
    """Decoded uint8 frames ``(T, H, W, 3)`` as a ``tv_tensors.Video`` ``(T, 3, H, W)`` (no copy)."""
    tensor = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else frames
    if tensor.ndim != 4 or tensor.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {tuple(tensor.shape)}")
    # A channels-last view: torch's uint8 antialiased resize is fastest on this memory layout.
    return tv_tensors.Video(tensor.permute(0, 3, 1, 2))


class LabelAwareHorizontalFlip(v2.Transform):
    """Flip the clip horizontally with probability ``p``; a flipped clip's label follows its pair.

    ``label_pairs`` lists the classes that a mirror image turns into each other (move_left and
    move_right; rotate_cw and rotate_ccw); a label in no pair is kept. The label is the int passed
    beside the video.
    """

    _transformed_types = (torch.Tensor, int)

    def __init__(self, label_pairs: Sequence[tuple[int, int]], p: float = 0.5) -> None:
        super().__init__()
        self.p = p
        self.swap: dict[int, int] = {}
        for a, b in label_pairs:
            if a in self.swap or b in self.swap:
                raise ValueError(f"label {a if a in self.swap else b} appears in more than one flip pair")
            self.swap[int(a)], self.swap[int(b)] = int(b), int(a)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"flip": bool(torch.rand(1) < self.p)}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not params["flip"]:
            return inpt
        if isinstance(inpt, int):
            return self.swap.get(inpt, inpt)
        return self._call_kernel(F.horizontal_flip, inpt)


class ThreeCrop(v2.Transform):
    """Three ``size`` x ``size`` crops along the long side: left, centre, right for a landscape clip,
    top, centre, bottom for a portrait one (as PySlowFast tests). ``(T, C, H, W)`` ->
    ``(3, T, C, size, size)``. Resize the short side to ``size`` first so the crops cover the frame.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Video):
            return inpt
        height, width = inpt.shape[-2:]
        if min(height, width) < self.size:
            raise ValueError(
                f"ThreeCrop({self.size}) needs frames of at least that size, got {height}x{width}"
            )
        size = self.size
        if width >= height:
            top = (height - size) // 2
            boxes = [(top, left) for left in (0, (width - size) // 2, width - size)]
        else:
            left = (width - size) // 2
            boxes = [(top, left) for top in (0, (height - size) // 2, height - size)]
        crops = [inpt[..., t : t + size, x : x + size] for t, x in boxes]
        return tv_tensors.wrap(torch.stack(crops), like=inpt)


class NormalizeVideo(v2.Transform):
    """uint8 video -> float32 ``(x / 255 - mean) / std`` per channel, in one pass over the pixels."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self._offset = torch.tensor(self.mean).view(3, 1, 1) * 255.0
        self._scale = 1.0 / (torch.tensor(self.std).view(3, 1, 1) * 255.0)

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Video):
            return inpt
        if inpt.dtype != torch.uint8:
            raise TypeError(f"NormalizeVideo expects a uint8 video, got {inpt.dtype}")
        out = inpt.as_subclass(torch.Tensor).to(torch.float32).sub_(self._offset).mul_(self._scale)
        return tv_tensors.wrap(out, like=inpt)


class ToClip(v2.Transform):
    """``(..., T, C, H, W)`` video -> plain tensor ``(..., C, T, H, W)``, the layout models take."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if not isinstance(inpt, tv_tensors.Video):
            return inpt
        return inpt.as_subclass(torch.Tensor).movedim(-4, -3)


def build_train_transform(
    crop_size: int = 224,
    *,
    scale: tuple[float, float] = (0.25, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    short_side_range: tuple[int, int] | None = None,
    hflip: bool = False,
    flip_label_pairs: Sequence[tuple[int, int]] | None = None,
    rand_augment_ops: int = 0,
    rand_augment_magnitude: int = 9,
    random_erasing: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Training transform: ``(video (T, 3, H, W) uint8, label) -> ((C, T, crop, crop) float, label)``.

    Args:
        crop_size: output height and width.
        scale, ratio: area fraction and aspect-ratio range of the random-resized crop.
        short_side_range: ``(min, max)``: instead of the random-resized crop, resize the short side to
            a random length in the range and take a random crop (PySlowFast's scale jitter).
        hflip: random horizontal flip (off by default: wrong for direction-sensitive classes).
        flip_label_pairs: with ``hflip``, classes that swap under a flip (label-aware flip).
        rand_augment_ops: RandAugment operations per clip (0: off), same for every frame.
        rand_augment_magnitude: RandAugment magnitude (0..30).
        random_erasing: probability of erasing one random box (the same in every frame).
        mean, std: per-channel normalisation on the 0..1 scale (ImageNet's by default).
    """
    steps: list[v2.Transform] = []
    if short_side_range is not None:
        low, high = short_side_range
        if not crop_size <= low <= high:
            raise ValueError(f"short_side_range {short_side_range} must satisfy {crop_size} <= min <= max")
        steps += [v2.RandomShortestSize(list(range(low, high + 1)), antialias=True), v2.RandomCrop(crop_size)]
    else:
        steps.append(v2.RandomResizedCrop(crop_size, scale=scale, ratio=ratio, antialias=True))
    if hflip:
        steps.append(LabelAwareHorizontalFlip(flip_label_pairs or ()))
    if rand_augment_ops > 0:
        steps.append(v2.RandAugment(num_ops=rand_augment_ops, magnitude=rand_augment_magnitude))
    steps.append(NormalizeVideo(mean, std))
    if random_erasing > 0:
        steps.append(v2.RandomErasing(p=random_erasing, value=0))
    steps.append(ToClip())
    return v2.Compose(steps)


def build_eval_transform(
    crop_size: int = 224,
    *,
    short_side: int | None = None,
    num_crops: int = 1,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Evaluation transform: resize the short side, crop, normalise.

    ``num_crops=1``: short side to ``short_side`` (default ``crop_size / 0.875``, 256 for 224), centre
    crop; output ``(C, T, crop, crop)``. ``num_crops=3``: short side to ``short_side`` (default
    ``crop_size``), :class:`ThreeCrop`; output ``(3, C, T, crop, crop)``, crops in the order
    left/top, centre, right/bottom.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    if num_crops == 1:
        side = short_side or math.floor(crop_size / 0.875 + 0.5)
        crop: v2.Transform = v2.CenterCrop(crop_size)
    else:
        side = short_side or crop_size
        crop = ThreeCrop(crop_size)
    if side < crop_size:
        raise ValueError(f"short_side {side} is smaller than crop_size {crop_size}")
    return v2.Compose([v2.Resize(side, antialias=True), crop, NormalizeVideo(mean, std), ToClip()])
