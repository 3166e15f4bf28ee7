"""The study set: a harder proxy video data set, where only frame order and relations separate classes.

The Moving-Digits demo (:mod:`vast.data.moving_digits`) is solved by any model that sees motion; it
cannot rank models. Here every video shows the same things: two orange *actors* (squares) over a
cluttered grey background, two or three dark *distractors* circling, a shaking camera; the 12 classes
differ only in how the actors move. They come in 6 pairs whose two members are exactly the same
frames in another order (:data:`REVERSAL_PAIRS`, :data:`HALF_SWAP_PAIRS`):

- **time-reversal pairs**: move_left / move_right, move_up / move_down (one actor moves, the other
  stands away from its path), approach / separate (both actors close in on each other, or draw
  apart), pass_left / pass_right (one actor passes beside the other, which stands still: the motion
  of move_left / move_right, told apart from it only by *where* the still actor stands);
- **two-phase pairs** (the two halves of the video swapped): left_then_right / right_then_left (one
  actor goes towards the other and back, or away and back: the same frames, so the same mean
  position), meet_then_part / part_then_meet (both actors).

Why the weak models fail: the partner of a video is its own frames permuted (:func:`partner_scene`),
so a model blind to frame order sees the same bag of frames in both classes of a pair and is at chance
within it (at most 50 % top-1). One frame at a random time has the same distribution in both classes,
and as every class shows the same objects, placed alike, one frame says little about the pair either.
Why a model of time can win: the direction of each actor's motion, the order of the two phases and
where the still actor stands relative to the moving one are all visible across frames.

Only the actors carry the class: the camera offset (a fresh random shift of up to :data:`JITTER`
pixels in every frame) and the sensor noise are drawn independently per frame, and the distractors
circle once per video. So these per-frame streams look the same reversed or with their halves
swapped, and a two-phase video has no seam in the middle.

Video ``i`` of a split is drawn from its own generator seeded by ``(seed, split, i)``: the same seed
gives the same files whatever the number of workers.
"""

from __future__ import annotations

import logging
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

CLASS_NAMES = (
    "move_left",
    "move_right",
    "move_up",
    "move_down",
    "left_then_right",
    "right_then_left",
    "approach",
    "separate",
    "meet_then_part",
    "part_then_meet",
    "pass_left",
    "pass_right",
)
# (base, partner): the partner's frames are the base's in reverse order.
REVERSAL_PAIRS = ((1, 0), (3, 2), (6, 7), (11, 10))
# (base, partner): the partner's frames are the base's with the two halves swapped.
HALF_SWAP_PAIRS = ((4, 5), (8, 9))
NUM_FRAMES = 16
FRAME_SIZE = 32
FPS = 8
SUPERSAMPLE = 2  # frames are drawn at 2x and averaged down: sub-pixel motion, soft edges
JITTER = 1.0  # camera shake: up to this many pixels in x and y, drawn afresh in every frame
MARGIN = 4.0  # actors keep this far from the frame's edges (pixels)
# How things look (ranges are uniform draws; pixels of the 32 x 32 frame, RGB levels 0..255).
ACTOR_HALF = (2.5, 3.25)  # actors: bright orange squares 5-6.5 pixels wide
ACTOR_COLOUR = ((220.0, 255.0), (140.0, 200.0), (0.0, 60.0))
NUM_DISTRACTORS = (2, 3)
DISTRACTOR_HALF = (1.5, 2.5)  # distractors: dark squares
DISTRACTOR_COLOUR = ((0.0, 50.0),) * 3
NUM_CLUTTER = (4, 8)  # static mid-grey rectangles on a smooth background
CLUTTER_LEVEL = (60.0, 160.0)
NOISE = 4.0  # sensor noise std, fresh in every frame
# How far actors go (pixels, over the video or, for the two-phase classes, over each half).
MOVE = (14.0, 20.0)  # move_*: one way
OUT_AND_BACK = (11.0, 15.0)  # left_then_right: out in 8 frames, back in 8
PASS = (16.0, 20.0)  # pass_*
# Where actors are (pixels between centres).
GAP = 9.0  # a still actor stands at least this far from the other's path
BESIDE = 11.0  # ... and, unless it is passed, not within this distance across a path beside its span
PASS_OFFSET = (8.0, 10.0)  # how far beside the still actor a passing one goes
NEAR, FAR = (8.0, 10.0), (20.0, 24.0)  # approach / separate: closest and farthest
_JITTER_PX = round(JITTER * SUPERSAMPLE)  # the camera offset, in render pixels
_SPLITS = {"train": 0, "val": 1}
_BASES = {base: partner for base, partner in REVERSAL_PAIRS + HALF_SWAP_PAIRS}
_PARTNERS = {partner: base for base, partner in _BASES.items()}


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything that makes one video; the frames are a pure function of it (:func:`render`).

    Per-frame streams (first axis: time): ``actors`` ``(T, 2, 2)`` and ``distractors`` ``(T, K, 2)``
    centres (x, y) in pixels of the scene; ``camera`` ``(T, 2)`` the view's offset in render pixels
    (integers); ``noise`` ``(T, H, W)`` sensor noise. Static: ``canvas`` the background in render
    pixels (the frame plus a :data:`JITTER` border), grey; sizes (half widths, pixels) and RGB colours.
    """

    label: int
    actors: np.ndarray
    distractors: np.ndarray
    camera: np.ndarray
    noise: np.ndarray
    canvas: np.ndarray
    actor_size: np.ndarray
    actor_colour: np.ndarray
    distractor_size: np.ndarray
    distractor_colour: np.ndarray


def base_of(label: int) -> int:
    """The pair member that :func:`sample_scene` draws; its partner is a permutation of its frames."""
    if label in _BASES:
        return label
    if label in _PARTNERS:
        return _PARTNERS[label]
    raise ValueError(f"label must be in 0..{len(CLASS_NAMES) - 1}, got {label}")


def partner_of(label: int) -> int:
    """The other class of ``label``'s pair."""
    base = base_of(label)
    return _BASES[base] if label == base else base


def frame_order(label: int) -> np.ndarray:
    """The permutation (of frame indices) between ``label`` and its partner: an involution."""
    base = base_of(label)
    if any(base == b for b, _ in HALF_SWAP_PAIRS):
        return np.roll(np.arange(NUM_FRAMES), NUM_FRAMES // 2)
    return np.arange(NUM_FRAMES)[::-1].copy()


def partner_scene(scene: Scene) -> Scene:
    """The scene of the pair class: every per-frame stream permuted, the static parts kept."""
    order = frame_order(scene.label)
    return replace(
        scene,
        label=partner_of(scene.label),
        actors=scene.actors[order],
        distractors=scene.distractors[order],
        camera=scene.camera[order],
        noise=scene.noise[order],
    )


def sample_scene(label: int, rng: np.random.Generator) -> Scene:
    """A random video of class ``label``.

    Both members of a pair make the same draws: the partner class gets the base class's scene with
    its frames permuted (:func:`partner_scene`), so the two classes have the same frames.
    """
    base = base_of(label)
    actors = _ACTOR_PATHS[CLASS_NAMES[base]](rng)
    num = int(rng.integers(NUM_DISTRACTORS[0], NUM_DISTRACTORS[1] + 1))
    scene = Scene(
        label=base,
        actors=actors.astype(np.float32),
        distractors=_sample_distractors(num, rng),
        camera=rng.integers(-_JITTER_PX, _JITTER_PX + 1, size=(NUM_FRAMES, 2)),
        noise=rng.normal(0.0, NOISE, size=(NUM_FRAMES, FRAME_SIZE, FRAME_SIZE)).astype(np.float32),
        canvas=_sample_canvas(rng),
        actor_size=rng.uniform(*ACTOR_HALF, size=2).astype(np.float32),
        actor_colour=_colours(ACTOR_COLOUR, 2, rng),
        distractor_size=rng.uniform(*DISTRACTOR_HALF, size=num).astype(np.float32),
        distractor_colour=_colours(DISTRACTOR_COLOUR, num, rng),
    )
    return scene if label == base else partner_scene(scene)


def _colours(ranges: tuple[tuple[float, float], ...], num: int, rng: np.random.Generator) -> np.ndarray:
    """``(num, 3)`` RGB colours, each channel uniform in its range."""
    low, high = np.array(ranges, dtype=np.float64).T
    return rng.uniform(low, high, size=(num, 3)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Actor paths: (T, 2, 2) centres of the two actors for the base class of each pair
# --------------------------------------------------------------------------------------------------


def _linear(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``(T, 2)`` points from ``start`` to ``end``; integer weights so a reversal is exact."""
    last = NUM_FRAMES - 1
    t = np.arange(NUM_FRAMES, dtype=np.float64)[:, None]
    return (start * (last - t) + end * t) / last


def _out_and_back(start: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """``(T, 2)``: from ``start`` to ``turn`` in the first half, back in the second (a periodic path:
    its halves swapped is the mirror-image trip, with no jump in the middle)."""
    half = NUM_FRAMES // 2
    t = np.arange(half, dtype=np.float64)[:, None] / (half - 1)
    out = start + (turn - start) * t
    return np.concatenate([out, out[::-1]])


def _still(point: np.ndarray) -> np.ndarray:
    return np.repeat(point[None], NUM_FRAMES, axis=0)


def _uniform_point(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(MARGIN, FRAME_SIZE - MARGIN, size=2)


def _bystander(path: np.ndarray, axis: int, rng: np.random.Generator) -> np.ndarray:
    """Where the still actor stands when the other moves along ``path`` (on ``axis``) without
    passing it: at least :data:`GAP` from the path, and not beside its span (else it would be passed)."""
    low, high = path[:, axis].min(), path[:, axis].max()
    across = path[0, 1 - axis]
    while True:
        point = _uniform_point(rng)
        beside = low - 3 <= point[axis] <= high + 3 and abs(point[1 - axis] - across) < BESIDE
        if not beside and np.min(np.linalg.norm(path - point, axis=1)) >= GAP:
            return point


def _axis_move(axis: int, rng: np.random.Generator) -> np.ndarray:
    """move_right (axis 0) or move_down (axis 1): :data:`MOVE` pixels; the other actor still."""
    length = rng.uniform(*MOVE)
    start = _uniform_point(rng)
    start[axis] = rng.uniform(MARGIN, FRAME_SIZE - MARGIN - length)
    end = start.copy()
    end[axis] += length
    path = _linear(start, end)
    return np.stack([path, _still(_bystander(path, axis, rng))], axis=1)


def _left_then_right(rng: np.random.Generator) -> np.ndarray:
    """One actor moves left by :data:`OUT_AND_BACK` pixels in 8 frames, towards the other, which stands
    still on its line (within 3 pixels) at least :data:`GAP` beyond the turn, then moves back.

    With its halves swapped (right_then_left) the actor backs away first and returns: the same
    frames, so what tells the two apart is when in the video the actors are close.
    """
    length = rng.uniform(*OUT_AND_BACK)
    room = FRAME_SIZE - 2 * MARGIN - length  # for the gap and the slack
    gap = rng.uniform(GAP, max(GAP, room))
    still = np.array([MARGIN + rng.uniform(0, max(0.0, room - gap)), rng.uniform(MARGIN, FRAME_SIZE - MARGIN)])
    start = still + np.array([gap + length, rng.uniform(-3, 3)])
    start[1] = np.clip(start[1], MARGIN, FRAME_SIZE - MARGIN)
    path = _out_and_back(start, start - np.array([length, 0.0]))
    return np.stack([path, _still(still)], axis=1)


def _pair_line(rng: np.random.Generator, far: float) -> tuple[np.ndarray, np.ndarray]:
    """A centre and a unit direction such that two points ``far`` apart along it stay in view."""
    while True:
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.sin(angle)])
        centre = _uniform_point(rng)
        ends = centre + np.outer([-far / 2, far / 2], direction)
        if np.all((ends >= MARGIN) & (ends <= FRAME_SIZE - MARGIN)):
            return centre, direction


def _approach(rng: np.random.Generator) -> np.ndarray:
    """Both actors move towards each other along a random line, from :data:`FAR` to :data:`NEAR` apart."""
    far, near = rng.uniform(*FAR), rng.uniform(*NEAR)
    centre, direction = _pair_line(rng, far)
    share = rng.uniform(0.35, 0.65)  # how much of the closing the first actor does
    a0, b0 = centre - direction * far / 2, centre + direction * far / 2
    a1 = a0 + direction * (far - near) * share
    b1 = b0 - direction * (far - near) * (1 - share)
    return np.stack([_linear(a0, a1), _linear(b0, b1)], axis=1)


def _meet_then_part(rng: np.random.Generator) -> np.ndarray:
    """Both actors close in (:data:`FAR` to :data:`NEAR` apart) in the first half, draw apart in the second."""
    paths = _approach(rng)
    return np.stack([_out_and_back(paths[0, k], paths[-1, k]) for k in (0, 1)], axis=1)


def _pass_right(rng: np.random.Generator) -> np.ndarray:
    """One actor moves right :data:`PASS` pixels, passing :data:`PASS_OFFSET` above or below the other, which
    stands in the middle half of its span."""
    length = rng.uniform(*PASS)
    start = _uniform_point(rng)
    start[0] = rng.uniform(MARGIN, FRAME_SIZE - MARGIN - length)
    offset = rng.uniform(*PASS_OFFSET) * rng.choice([-1.0, 1.0])
    start[1] = rng.uniform(MARGIN + max(0, -offset), FRAME_SIZE - MARGIN - max(0, offset))
    still = np.array([start[0] + length * rng.uniform(0.25, 0.75), start[1] + offset])
    return np.stack([_linear(start, start + np.array([length, 0.0])), _still(still)], axis=1)


_ACTOR_PATHS = {
    "move_right": lambda rng: _axis_move(0, rng),
    "move_down": lambda rng: _axis_move(1, rng),
    "left_then_right": _left_then_right,
    "approach": _approach,
    "meet_then_part": _meet_then_part,
    "pass_right": _pass_right,
}


def _sample_distractors(num: int, rng: np.random.Generator) -> np.ndarray:
    """``(T, num, 2)``: squares circling (either way) once per video, radius 2-5 pixels: the path
    closes on itself, so neither a reversal nor a swap of the halves shows in it."""
    centre = rng.uniform(MARGIN, FRAME_SIZE - MARGIN, size=(num, 2))
    radius = rng.uniform(2, 5, size=num)
    phase = rng.uniform(0, 2 * np.pi, size=num)
    turn = rng.choice([-1.0, 1.0], size=num)
    angle = phase + turn * 2 * np.pi * np.arange(NUM_FRAMES)[:, None] / NUM_FRAMES
    points = centre + radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    return points.astype(np.float32)


def _sample_canvas(rng: np.random.Generator) -> np.ndarray:
    """The static background in render pixels: a smooth pattern plus mid-grey clutter rectangles."""
    side = FRAME_SIZE * SUPERSAMPLE + 2 * _JITTER_PX
    coarse = torch.from_numpy(rng.standard_normal((1, 1, 7, 7)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)[0, 0].numpy()
    canvas = rng.uniform(80, 130) + 15.0 * smooth
    for _ in range(int(rng.integers(NUM_CLUTTER[0], NUM_CLUTTER[1] + 1))):
        w, h = rng.integers(2, 11, size=2)
        x, y = rng.integers(0, side - 1, size=2)
        canvas[y : y + h, x : x + w] = rng.uniform(*CLUTTER_LEVEL)
    return canvas.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def render(scene: Scene) -> np.ndarray:
    """The video's frames: uint8 ``(T, H, W, 3)`` RGB. Each frame depends only on its own
    entries of the per-frame streams, so permuting them permutes the frames exactly."""
    side = FRAME_SIZE * SUPERSAMPLE
    frames = np.empty((NUM_FRAMES, side, side, 3), dtype=np.float32)
    for t, (dx, dy) in enumerate(scene.camera):
        x0, y0 = _JITTER_PX + dx, _JITTER_PX + dy
        frames[t] = scene.canvas[y0 : y0 + side, x0 : x0 + side, None]
    objects = [
        (scene.distractors[:, k], scene.distractor_size[k], scene.distractor_colour[k])
        for k in range(scene.distractors.shape[1])
    ] + [(scene.actors[:, k], scene.actor_size[k], scene.actor_colour[k]) for k in range(2)]
    for centres, size, colour in objects:
        alpha = _square_coverage(centres, size, scene.camera)[..., None]
        frames += alpha * (colour - frames)
    small = frames.reshape(NUM_FRAMES, FRAME_SIZE, SUPERSAMPLE, FRAME_SIZE, SUPERSAMPLE, 3).mean(axis=(2, 4))
    return np.clip(np.rint(small + scene.noise[..., None]), 0, 255).astype(np.uint8)


def _square_coverage(centres: np.ndarray, half: float, camera: np.ndarray) -> np.ndarray:
    """``(T, side, side)`` share of each render pixel covered by an axis-aligned square of half width
    ``half`` (pixels of the scene) at ``centres`` (T, 2), seen from the per-frame ``camera``."""
    side = FRAME_SIZE * SUPERSAMPLE
    pixel = np.arange(side, dtype=np.float32) + 0.5
    # Scene point p is at render coordinate p * SUPERSAMPLE - camera offset.
    where = centres.astype(np.float32) * SUPERSAMPLE - camera.astype(np.float32)
    reach = half * SUPERSAMPLE
    cover_x = np.clip(reach + 0.5 - np.abs(pixel[None] - where[:, :1]), 0, 1)
    cover_y = np.clip(reach + 0.5 - np.abs(pixel[None] - where[:, 1:]), 0, 1)
    return cover_y[:, :, None] * cover_x[:, None, :]


# --------------------------------------------------------------------------------------------------
# Writing the data set
# --------------------------------------------------------------------------------------------------


def generate_video(label: int, split: str, index: int, seed: int) -> np.ndarray:
    """Frames of video ``index`` of ``split`` (class ``label``): uint8 ``(T, H, W, 3)``; a pure
    function of its arguments, so a data set is the same whatever the number of workers."""
    return render(sample_scene(label, np.random.default_rng([seed, _SPLITS[split], index])))


def make_study_set(
    root: str | os.PathLike,
    num_train: int = 3200,
    num_val: int = 800,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Write the study set to ``root`` and return the paths of its ``train.txt`` and ``val.txt``.

    Layout as :func:`vast.data.moving_digits.make_moving_digits`: ``train/00000.mp4 ...``,
    ``val/...``, list annotations (paths relative to ``root``, video ``i`` of class ``i mod 12``),
    ``classes.txt`` and ``study_set.json`` (the settings and the pairs). ``workers`` processes encode
    in parallel (default: one per core).
    """
    _check_arguments(root, num_train, num_val, seed, workers)
    root = Path(root)
    started = time.perf_counter()
    for split in _SPLITS:
        (root / split).mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(root / numbered_video(split, i)), i % len(CLASS_NAMES), split, i, seed)
        for split, count in (("train", num_train), ("val", num_val))
        for i in range(count)
    ]
    run_writers(_write_one, jobs, max(1, workers or os.cpu_count() or 1), "make-study", progress, chunksize=32)
    lists = write_set_files(
        root, "study_set", CLASS_NAMES, seed, {"train": num_train, "val": num_val}, NUM_FRAMES, FRAME_SIZE, FPS,
        time_reversal_pairs=[list(p) for p in REVERSAL_PAIRS], half_swap_pairs=[list(p) for p in HALF_SWAP_PAIRS],
    )  # fmt: skip
    logger.debug("wrote %d + %d study videos to %s in %.1f s", num_train, num_val, root, time.perf_counter() - started)
    return lists["train"], lists["val"]


def _check_arguments(root: str | os.PathLike, num_train: int, num_val: int, seed: int, workers: int | None) -> None:
    if num_train < 1 or num_val < 1:
        raise DataError(f"need at least one video per split, got num_train={num_train}, num_val={num_val}")
    if seed < 0:
        raise DataError(f"seed must be a whole number >= 0, got {seed}")
    if workers is not None and workers < 1:
        raise DataError(f"workers must be >= 1 (or None: one per core), got {workers}")
    if Path(root).exists() and not Path(root).is_dir():
        raise DataError(f"{root} exists and is not a folder; choose another output folder")


def _write_one(job: tuple[str, int, str, int, int]) -> None:
    path, label, split, index, seed = job
    write_video(path, generate_video(label, split, index, seed), fps=FPS)
