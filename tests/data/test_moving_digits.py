"""The Moving-Digits demo data: time-reversal pairs, motion directions measured on the frames, flip
pairs, reproducibility, disjoint splits, and the written MP4s against the generated frames."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as F

from vast.data import moving_digits as md
from vast.data.annotations import load_annotations
from vast.data.decoding import open_video

DIGITS = md.load_digit_scans()


@pytest.fixture(scope="module")
def demo_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    return md.make_moving_digits(root, num_train=32, num_val=16, seed=3, workers=2, progress=False)


def clean_frames(label, seed=0, digit=7):
    """Grey frames (T, H, W) in 0..255 of a video with a black background, and its motion."""
    motion = md.sample_motion(label, DIGITS[digit], np.random.default_rng(seed))
    motion = replace(motion, background=np.zeros_like(motion.background))
    return md.render(motion)[..., 0].astype(np.float64), motion


def centroids(frames):
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]]
    mass = frames.sum(axis=(1, 2))
    return (frames * xs).sum(axis=(1, 2)) / mass, (frames * ys).sum(axis=(1, 2)) / mass


def turn_direction(frames, motion):
    """+1 if the digit turns clockwise on screen, -1 if counter-clockwise, judged by torchvision."""
    step = abs(motion.end.angle - motion.start.angle) / (md.NUM_FRAMES - 1)
    x, y = np.mean(centroids(frames)[0]), np.mean(centroids(frames)[1])
    votes = 0
    for t in range(md.NUM_FRAMES - 1):
        now, after = torch.from_numpy(frames[t])[None], torch.from_numpy(frames[t + 1])[None]
        # torchvision turns positive angles counter-clockwise.
        cw = F.rotate(now, -step, center=[x, y], interpolation=F.InterpolationMode.BILINEAR)
        ccw = F.rotate(now, step, center=[x, y], interpolation=F.InterpolationMode.BILINEAR)
        votes += 1 if (cw - after).abs().sum() < (ccw - after).abs().sum() else -1
    return np.sign(votes)


def motion_kind(frames, motion):
    """The class a person would name from the frames alone."""
    xs, ys = centroids(frames)
    dx, dy, mass = xs[-1] - xs[0], ys[-1] - ys[0], frames.sum(axis=(1, 2))
    if abs(dx) > 10:
        return "move_right" if dx > 0 else "move_left"
    if abs(dy) > 10:
        return "move_down" if dy > 0 else "move_up"
    if abs(np.log(mass[-1] / mass[0])) > 0.5:
        return "grow" if mass[-1] > mass[0] else "shrink"
    return "rotate_cw" if turn_direction(frames, motion) > 0 else "rotate_ccw"


@pytest.mark.parametrize("label", range(8))
def test_each_class_shows_its_motion(label):
    for seed in range(3):
        frames, motion = clean_frames(label, seed)
        assert motion_kind(frames, motion) == md.CLASS_NAMES[label], seed


@pytest.mark.parametrize("label", range(8))
def test_pair_class_is_exactly_the_reversed_video(label):
    for seed in range(3):
        motion = md.sample_motion(label, DIGITS[seed], np.random.default_rng(seed))
        frames = md.render(motion)
        partner = md.reverse_motion(motion)
        assert partner.label == md.pair_of(label) != label
        np.testing.assert_array_equal(md.render(partner), frames[::-1])
        # The pair class drawn from the same generator state is that same reversed video: the
        # trajectory, digit and noise distributions are shared by both members of the pair.
        drawn = md.sample_motion(md.pair_of(label), DIGITS[seed], np.random.default_rng(seed))
        np.testing.assert_array_equal(md.render(drawn), frames[::-1])


def test_pairs_and_flip_pairs_are_consistent():
    pairs = {frozenset(p) for p in md.TIME_REVERSAL_PAIRS}
    assert len(pairs) == 4 and set().union(*pairs) == set(range(8))
    assert {frozenset(p) for p in md.FLIP_LABEL_PAIRS} == {frozenset({0, 1}), frozenset({4, 5})}


@pytest.mark.parametrize("label", range(8))
def test_a_horizontal_flip_turns_each_class_into_its_flip_pair(label):
    swap = {a: b for pair in md.FLIP_LABEL_PAIRS for a, b in (pair, pair[::-1])}
    frames, motion = clean_frames(label, seed=11)
    mirrored = np.ascontiguousarray(frames[:, :, ::-1])
    assert motion_kind(mirrored, motion) == md.CLASS_NAMES[swap.get(label, label)]


def test_generation_is_reproducible_and_seeded():
    a = md.generate_video(DIGITS[5], 4, "train", 9, seed=1)
    b = md.generate_video(DIGITS[5], 4, "train", 9, seed=1)
    assert a.dtype == np.uint8 and a.shape == (16, 64, 64, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, md.generate_video(DIGITS[5], 4, "train", 9, seed=2))
    assert not np.array_equal(a, md.generate_video(DIGITS[5], 4, "val", 9, seed=1))


def test_splits_use_disjoint_digit_scans():
    pools = md.split_digits(len(DIGITS), seed=0)
    assert len(DIGITS) == 1797
    assert len(pools["train"]) + len(pools["val"]) == 1797 and len(pools["val"]) == 359
    assert not set(pools["train"]) & set(pools["val"])
    for split in ("train", "val"):
        scans = {md.video_spec(pools[split], split, i, seed=0)[1] for i in range(200)}
        assert scans <= set(pools[split])


def test_written_set_layout_and_annotations(demo_set):
    root = demo_set.root
    train = load_annotations(demo_set.train)
    val = load_annotations(demo_set.val)
    assert train.class_names == list(md.CLASS_NAMES) == val.class_names
    assert len(train) == 32 and len(val) == 16
    assert np.bincount([r.label for r in train.records]).tolist() == [4] * 8
    assert all(r.path.is_file() and r.path.parent == root / "train" for r in train.records)
    meta = json.loads((root / "moving_digits.json").read_text())
    assert meta["flip_label_pairs"] == [[0, 1], [4, 5]] and meta["seed"] == 3


def test_written_videos_decode_close_to_the_generated_frames(demo_set):
    pools = md.split_digits(len(DIGITS), seed=3)
    for split, index in (("train", 0), ("train", 13), ("val", 6)):
        label, scan = md.video_spec(pools[split], split, index, seed=3)
        expected = md.generate_video(DIGITS[scan], label, split, index, seed=3)
        with open_video(demo_set.root / split / f"{index:05d}.mp4") as video:
            assert video.num_frames == 16 and video.fps == pytest.approx(md.FPS)
            decoded = video.get_frames(range(16))
        assert decoded.shape == expected.shape
        # H.264 is lossy: close, not equal.
        assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 10


def test_same_seed_same_files_whatever_the_workers(tmp_path, demo_set):
    again = md.make_moving_digits(tmp_path / "again", num_train=8, num_val=4, seed=3, workers=1, progress=0)
    for split, count in (("train", 8), ("val", 4)):
        for index in range(count):
            name = f"{split}/{index:05d}.mp4"
            assert (again.root / name).read_bytes() == (demo_set.root / name).read_bytes(), name
    head = (demo_set.root / "train.txt").read_text().splitlines()[:8]
    assert again.train.read_text().splitlines() == head
