"""Moving Digits: the demo data set, made on the spot from scikit-learn's handwritten digits.

Each video shows one of the 1,797 8x8 digit scans of ``sklearn.datasets.load_digits`` (upscaled)
moving over a noise background: 16 frames of 64 x 64, written as H.264 MP4. There are 8 classes in 4
time-reversal pairs (:data:`TIME_REVERSAL_PAIRS`): move_left/move_right, move_up/move_down,
rotate_cw/rotate_ccw, grow/shrink.

Why a model must model time to solve it: a video is a :class:`DigitMotion`, a digit moving in a
straight line from a start pose to an end pose (position, angle, scale). For each pair the
trajectory is drawn from one distribution shared by both classes; the forward class (move_right,
move_down, rotate_cw, grow) plays it from one end, the backward class plays the same frames in the
opposite order (:func:`reverse_motion`). So the *set* of frames of a video, and hence any frame
drawn at a random time, has the same distribution in both classes of a pair: a model that ignores
frame order is at chance within each pair (about 50 % overall). The background noise is drawn
independently of the class, fresh in every frame (plus a static smooth pattern), so it carries no
direction either. (What cannot be equalised is the pose *at a known frame index*: a left-moving digit
is on average further right in frame 0 than in frame 15. Using that is using the frame order.)

Under a horizontal flip move_left <-> move_right and rotate_cw <-> rotate_ccw swap, while up/down
and grow/shrink keep their labels: :data:`FLIP_LABEL_PAIRS` for a label-aware flip.

Train and validation videos use disjoint digit scans (80 % / 20 % of the scans, split by a seeded
permutation). Video ``i`` of a split is drawn from its own generator, seeded by
``(seed, split, i)``, so a data set is identical for a given seed whatever the number of workers.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vast.data.encoding import numbered_video, run_writers, write_set_files, write_video
from vast.errors import DataError

logger = logging.getLogger(__name__)

CLASS_NAMES = ("move_left", "move_right", "move_up", "move_down", "rotate_cw", "rotate_ccw", "grow", "shrink")
# (forward, backward) motions are each other played backwards.
TIME_REVERSAL_PAIRS = ((1, 0), (3, 2), (4, 5), (6, 7))
_FORWARD = frozenset(forward for forward, _ in TIME_REVERSAL_PAIRS)
# Classes that a horizontal flip turns into each other.
FLIP_LABEL_PAIRS = ((0, 1), (4, 5))
NUM_FRAMES = 16
FRAME_SIZE = 64
FPS = 8
VAL_FRACTION = 0.2
_SPLITS = {"train": 0, "val": 1}
_DIGIT_PIXELS = 32  # the 8x8 scans are smoothed to this before being drawn
_FINE_NOISE = 8.0  # std of the per-frame noise, in grey levels
_SMOOTH_NOISE = 20.0  # std of the static background pattern


@dataclass(frozen=True)
class Pose:
    """Where the digit is: centre (x right, y down, in pixels), angle (degrees, clockwise on screen)
    and scale (output pixels per scan pixel)."""

    x: float
    y: float
    angle: float
    scale: float


@dataclass(frozen=True, eq=False)
class DigitMotion:
    """Everything that makes one video: the frames are a pure function of it (:func:`render`).

    ``digit``: the 8x8 scan in [0, 1]; the pose moves linearly from ``start`` (frame 0) to ``end``
    (last frame); ``background``: float32 ``(T, H, W)`` grey levels; ``brightness``: digit grey level.
    """

    label: int
    digit: np.ndarray
    start: Pose
    end: Pose
    background: np.ndarray
    brightness: float


def pair_of(label: int) -> int:
    """The class whose videos are this class's videos played backwards."""
    for forward, backward in TIME_REVERSAL_PAIRS:
        if label in (forward, backward):
            return backward if label == forward else forward
    raise ValueError(f"label must be in 0..{len(CLASS_NAMES) - 1}, got {label}")


def reverse_motion(motion: DigitMotion) -> DigitMotion:
    """The motion of the pair class that shows ``motion``'s frames in the opposite order."""
    return replace(
        motion,
        label=pair_of(motion.label),
        start=motion.end,
        end=motion.start,
        background=motion.background[::-1].copy(),
    )


def sample_motion(label: int, digit: np.ndarray, rng: np.random.Generator) -> DigitMotion:
    """A random video of class ``label`` for ``digit`` (8x8, values 0..16 as in ``load_digits``).

    The draws do not depend on which member of a pair ``label`` is: the backward class gets
    exactly the forward class's video reversed (same draws, :func:`reverse_motion`).
    """
    forward = label if label in _FORWARD else pair_of(label)
    start, end = _sample_trajectory(forward, rng)
    brightness = float(rng.uniform(190, 255))
    background = _sample_background(rng)
    motion = DigitMotion(
        forward, np.asarray(digit, dtype=np.float32) / 16.0, start, end, background, brightness
    )
    return motion if label == forward else reverse_motion(motion)


def _sample_trajectory(forward: int, rng: np.random.Generator) -> tuple[Pose, Pose]:
    """Start and end pose of a forward-class video (move_right, move_down, rotate_cw or grow)."""
    steps, motion = NUM_FRAMES - 1, CLASS_NAMES[forward]
    if motion in ("move_right", "move_down"):  # 1-2 pixels per frame, the digit fully in view
        scale = rng.uniform(2.25, 3.0)
        margin = 4 * scale + 1
        distance = rng.uniform(1.0, 2.0) * steps
        along = rng.uniform(margin, FRAME_SIZE - margin - distance)
        across = rng.uniform(margin, FRAME_SIZE - margin)
        angle = rng.uniform(-20, 20)
        if motion == "move_right":
            return Pose(along, across, angle, scale), Pose(along + distance, across, angle, scale)
        return Pose(across, along, angle, scale), Pose(across, along + distance, angle, scale)
    if motion == "rotate_cw":  # 6-12 degrees per frame about a point near the centre
        x, y = rng.uniform(26, 38, size=2)
        scale = rng.uniform(2.25, 3.0)
        angle = rng.uniform(0, 360)
        turn = rng.uniform(6, 12) * steps
        return Pose(x, y, angle, scale), Pose(x, y, angle + turn, scale)
    # grow: by a factor 1.5-2 about a point near the centre
    x, y = rng.uniform(24, 40, size=2)
    scale = rng.uniform(1.5, 2.2)
    angle = rng.uniform(-20, 20)
    return Pose(x, y, angle, scale), Pose(x, y, angle, scale * rng.uniform(1.5, 2.0))


def _sample_background(rng: np.random.Generator) -> np.ndarray:
    coarse = torch.from_numpy(rng.standard_normal((1, 1, 9, 9)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(FRAME_SIZE, FRAME_SIZE), mode="bicubic", align_corners=False)[0, 0]
    level = rng.uniform(40, 100)
    fine = rng.standard_normal((NUM_FRAMES, FRAME_SIZE, FRAME_SIZE)).astype(np.float32)
    return (level + _SMOOTH_NOISE * smooth.numpy()[None] + _FINE_NOISE * fine).astype(np.float32)


def poses(motion: DigitMotion) -> list[Pose]:
    """The pose in each frame: linear from ``start`` to ``end``.

    Frame ``t`` weighs the ends by ``(T-1-t)/(T-1)`` and ``t/(T-1)``; computing both weights from
    integers makes a reversed motion's poses bit-identical to the original's, in reverse.
    """
    last = NUM_FRAMES - 1
    out = []
    for t in range(NUM_FRAMES):
        a, b = (last - t) / last, t / last
        out.append(
            Pose(
                motion.start.x * a + motion.end.x * b,
                motion.start.y * a + motion.end.y * b,
                motion.start.angle * a + motion.end.angle * b,
                motion.start.scale * a + motion.end.scale * b,
            )
        )
    return out


def render(motion: DigitMotion) -> np.ndarray:
    """The video's frames: uint8 ``(T, H, W, 3)`` (grey, as RGB)."""
    size = FRAME_SIZE
    theta = torch.tensor([_inverse_affine(pose) for pose in poses(motion)], dtype=torch.float32)
    grid = F.affine_grid(theta, [NUM_FRAMES, 1, size, size], align_corners=False)
    digit = torch.from_numpy(np.ascontiguousarray(motion.digit))[None, None]
    smooth = F.interpolate(digit, size=(_DIGIT_PIXELS, _DIGIT_PIXELS), mode="bicubic", align_corners=False)
    smooth = smooth.clamp(0, 1).expand(NUM_FRAMES, 1, _DIGIT_PIXELS, _DIGIT_PIXELS)
    alpha = F.grid_sample(smooth, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    alpha = alpha.numpy()
    frames = motion.background * (1 - alpha) + motion.brightness * alpha
    grey = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def _inverse_affine(pose: Pose) -> list[list[float]]:
    """``affine_grid`` matrix: output pixel (normalised to [-1, 1]) -> digit image (normalised).

    A digit pixel at offset d from the digit centre lands at ``R(angle) * d * scale + centre``; the
    grid needs the inverse. Both spaces are normalised by their half-size.
    """
    half_out, half_digit = FRAME_SIZE / 2, 8 / 2  # the scan is 8 pixels, whatever it is smoothed to
    radians = math.radians(pose.angle)
    cos, sin = math.cos(radians), math.sin(radians)
    k = half_out / (pose.scale * half_digit)
    # Centre in normalised output coordinates (pixel centres at -1 + (i + 0.5) / half).
    cx, cy = (pose.x + 0.5) / half_out - 1, (pose.y + 0.5) / half_out - 1
    # R(-angle) = [[cos, sin], [-sin, cos]] undoes the clockwise (y-down) rotation.
    return [
        [k * cos, k * sin, -k * (cos * cx + sin * cy)],
        [-k * sin, k * cos, -k * (-sin * cx + cos * cy)],
    ]


def split_digits(num_digits: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint scan indices for each split: 80 % train, 20 % validation (seeded permutation)."""
    order = np.random.default_rng([seed, 12345]).permutation(num_digits)
    num_val = round(num_digits * VAL_FRACTION)
    return {"train": np.sort(order[num_val:]), "val": np.sort(order[:num_val])}


def video_spec(pool: np.ndarray, split: str, index: int, seed: int) -> tuple[int, int]:
    """Label and digit-scan index of video ``index`` of ``split``.

    Labels cycle through the classes (balanced splits); the scan is drawn from ``pool``, the split's
    scan indices.
    """
    rng = np.random.default_rng([seed, _SPLITS[split], index, 1])
    return index % len(CLASS_NAMES), int(pool[rng.integers(len(pool))])


def generate_video(digit: np.ndarray, label: int, split: str, index: int, seed: int) -> np.ndarray:
    """Frames of video ``index`` of ``split`` (class ``label``, scan ``digit``): uint8 ``(T, H, W, 3)``.

    A pure function of its arguments, so a data set is the same whatever the number of workers.
    """
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    return render(sample_motion(label, digit, rng))


def load_digit_scans() -> np.ndarray:
    """The 1,797 scans bundled with scikit-learn: float ``(1797, 8, 8)``, values 0..16."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    return load_digits().images


@dataclass(frozen=True)
class DemoDataset:
    """Where :func:`make_moving_digits` wrote the data set."""

    root: Path
    train: Path
    val: Path
    class_names_file: Path
    num_train: int
    num_val: int
    seconds: float


def make_moving_digits(
    out_dir: str | os.PathLike,
    *,
    num_train: int = 2000,
    num_val: int = 400,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> DemoDataset:
    """Write the Moving-Digits data set to ``out_dir``.

    Layout: ``train/00000.mp4 ...``, ``val/00000.mp4 ...``, list annotations ``train.txt`` and
    ``val.txt`` (paths relative to ``out_dir``), ``classes.txt`` and ``moving_digits.json`` (the
    settings, the time-reversal and flip label pairs). ``workers`` processes encode in parallel
    (default: one per core). Rewriting over an existing set replaces its files.
    """
    if num_train < 1 or num_val < 1:
        raise DataError(f"need at least one video per split, got --num-train {num_train} --num-val {num_val}")
    root = Path(out_dir)
    if root.exists() and not root.is_dir():
        raise DataError(f"{root} exists and is not a folder; choose another output folder")
    started = time.perf_counter()
    digits = load_digit_scans()
    pools = split_digits(len(digits), seed)
    for split in _SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
    workers = max(1, workers or os.cpu_count() or 1)
    jobs = []
    for split, count in (("train", num_train), ("val", num_val)):
        for index in range(count):
            label, scan = video_spec(pools[split], split, index, seed)
            jobs.append((str(root / numbered_video(split, index)), digits[scan], label, split, index, seed))
    run_writers(_write_one, jobs, workers, "make-demo", progress)
    lists = write_set_files(
        root, "moving_digits", CLASS_NAMES, seed, {"train": num_train, "val": num_val}, NUM_FRAMES, FRAME_SIZE, FPS,
        time_reversal_pairs=[list(p) for p in TIME_REVERSAL_PAIRS],
        flip_label_pairs=[list(p) for p in FLIP_LABEL_PAIRS],
        digit_scans={split: len(indices) for split, indices in pools.items()},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    logger.debug("wrote %d + %d Moving-Digits videos to %s in %.1f s", num_train, num_val, root, seconds)
    return DemoDataset(root, lists["train"], lists["val"], root / "classes.txt", num_train, num_val, seconds)


def _write_one(job: tuple[str, np.ndarray, int, str, int, int]) -> None:
    path, digit, label, split, index, seed = job
    write_video(path, generate_video(digit, label, split, index, seed), fps=FPS)
