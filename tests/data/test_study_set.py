"""The study set: each class's motion measured on rendered frames, the pairs' frames equal up to order,
reproducibility, the written files read by the training pipeline, and bad arguments.

Measurements use "clean" renders (no background, distractors, noise or camera shake) with one actor
at a time, so the centroid of the frame's brightness is that actor's position as drawn."""

import json
from dataclasses import replace

import numpy as np
import pytest

from vast.cli.main import main
from vast.data import study_set as ss
from vast.data.annotations import load_annotations
from vast.data.decoding import open_video
from vast.engine.config import load_config
from vast.engine.data import build_eval_dataset, build_train_dataset
from vast.errors import DataError

SEEDS = range(4)
PAIRS = ss.REVERSAL_PAIRS + ss.HALF_SWAP_PAIRS


@pytest.fixture(scope="module")
def study_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    train, val = ss.make_study_set(root, num_train=24, num_val=12, seed=3, workers=2, progress=False)
    return root, train, val


def scene(label, seed):
    return ss.sample_scene(label, np.random.default_rng(seed))


def clean(s, camera=False):
    """The scene on a black background, without distractors, noise and (unless ``camera``) shake."""
    return replace(
        s,
        canvas=np.zeros_like(s.canvas),
        distractors=s.distractors[:, :0],
        noise=np.zeros_like(s.noise),
        camera=s.camera if camera else np.zeros_like(s.camera),
    )


def track(s, actor, camera=False):
    """(T, 2) brightness centroids (x, y) of one actor, measured on its clean frames."""
    colours = np.zeros((2, 3), dtype=np.float32)
    colours[actor] = 255
    frames = ss.render(replace(clean(s, camera), actor_colour=colours))[..., 0].astype(np.float64)
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]] + 0.5
    mass = frames.sum(axis=(1, 2))
    assert mass.min() > 0, "an actor left the frame"
    return np.stack([(frames * xs).sum(axis=(1, 2)) / mass, (frames * ys).sum(axis=(1, 2)) / mass], axis=1)


def mover_and_still(s):
    """Tracks of the actor that moves and of the one that stands still (they must exist)."""
    a, b = track(s, 0), track(s, 1)
    spread = [np.ptp(p, axis=0).max() for p in (a, b)]
    assert min(spread) < 0.05 < 5 < max(spread), spread
    return (a, b) if spread[0] > spread[1] else (b, a)


def passes(mover, still, axis):
    """Whether the moving actor goes past the still one along ``axis``, closer than BESIDE across."""
    side = np.sign(mover[:, axis] - still[0, axis])
    return side[0] != side[-1] and abs(mover[0, 1 - axis] - still[0, 1 - axis]) < ss.BESIDE


@pytest.mark.parametrize("label", range(len(ss.CLASS_NAMES)))
def test_each_class_shows_its_motion(label):
    name = ss.CLASS_NAMES[label]
    half = ss.NUM_FRAMES // 2
    for seed in SEEDS:
        s = scene(label, seed)
        if name in ("approach", "separate", "meet_then_part", "part_then_meet"):
            gap = np.linalg.norm(track(s, 0) - track(s, 1), axis=1)
            steps = np.diff(gap)
            if name == "approach":
                assert gap[0] > 15 and gap[-1] < 11 and np.all(steps < 0), gap
            elif name == "separate":
                assert gap[0] < 11 and gap[-1] > 15 and np.all(steps > 0), gap
            elif name == "meet_then_part":
                assert np.all(steps[: half - 1] < 0) and np.all(steps[half:] > 0) and gap.min() < 11, gap
            else:
                assert np.all(steps[: half - 1] > 0) and np.all(steps[half:] < 0) and gap.max() > 15, gap
            continue
        mover, still = mover_and_still(s)
        dx, dy = mover[-1] - mover[0]
        axis = 1 if name in ("move_up", "move_down") else 0
        across = mover[:, 1 - axis]
        assert np.ptp(across) < 0.05, "the mover keeps to one line"
        if name in ("left_then_right", "right_then_left"):
            middle = mover[half, 0] - mover[0, 0]
            assert abs(dx) < 0.05 and (middle < -6 if name == "left_then_right" else middle > 6), mover[:, 0]
            assert not passes(mover[:half], still, 0) and not passes(mover[half:], still, 0)
            # Towards the still actor and back, or away and back: when the two are close differs.
            gap = np.linalg.norm(mover - still, axis=1)
            assert (gap[half] < gap[0] - 6) if name == "left_then_right" else (gap[half] > gap[0] + 6), gap
            continue
        direction = {"move_left": -1, "move_right": 1, "move_up": -1, "move_down": 1, "pass_left": -1, "pass_right": 1}
        assert direction[name] * (dy if axis else dx) > 9
        if name.startswith("pass"):
            assert passes(mover, still, 0) and abs(still[0, 1] - across[0]) > 5
        else:
            assert not passes(mover, still, axis)
            assert np.linalg.norm(mover - still, axis=1).min() >= 6


@pytest.mark.parametrize("pair", ss.REVERSAL_PAIRS)
def test_a_reversal_pair_shows_the_same_frames_backwards(pair):
    base, partner = pair
    for seed in SEEDS:
        frames = ss.render(scene(base, seed))
        # Drawn from the same generator state, the partner class is exactly the reversed video.
        np.testing.assert_array_equal(ss.render(scene(partner, seed)), frames[::-1])
        np.testing.assert_array_equal(ss.render(ss.partner_scene(scene(base, seed))), frames[::-1])


@pytest.mark.parametrize("pair", ss.HALF_SWAP_PAIRS)
def test_a_two_phase_pair_has_the_same_frames_and_mean_position(pair):
    base, partner = pair
    half = ss.NUM_FRAMES // 2
    for seed in SEEDS:
        a, b = ss.render(scene(base, seed)), ss.render(scene(partner, seed))
        np.testing.assert_array_equal(b, np.concatenate([a[half:], a[:half]]))
        # The same multiset of frames: sorted by their bytes, the two videos are equal.
        order = [sorted(range(len(v)), key=lambda t, v=v: v[t].tobytes()) for v in (a, b)]
        np.testing.assert_array_equal(a[order[0]], b[order[1]])
        for actor in (0, 1):
            np.testing.assert_allclose(
                track(scene(base, seed), actor).mean(axis=0), track(scene(partner, seed), actor).mean(axis=0)
            )
        # Yet the order differs: what the first half shows is not what the second half shows.
        assert not np.array_equal(a[:half], b[:half])


def test_pairs_cover_every_class_once():
    members = [label for pair in PAIRS for label in pair]
    assert sorted(members) == list(range(len(ss.CLASS_NAMES))) == sorted(ss.partner_of(m) for m in members)
    for base, partner in PAIRS:
        assert ss.partner_of(base) == partner and ss.partner_of(partner) == base
    with pytest.raises(ValueError, match=r"label must be in 0\.\.11"):
        ss.partner_of(12)


def test_no_seam_where_the_halves_meet():
    """Everything but the actors is as continuous across the middle of a video as anywhere else, so
    a swapped video is not given away by a jump: shake and noise are fresh in every frame, and the
    distractors' paths close on themselves."""
    for seed in SEEDS:
        s = scene(4, seed)
        wrap = np.linalg.norm(s.distractors[0] - s.distractors[-1], axis=-1)
        steps = np.linalg.norm(np.diff(s.distractors, axis=0), axis=-1)
        assert np.all(wrap <= steps.max(axis=0) + 1e-4)


def test_distractors_clutter_and_camera_shake_are_there():
    for seed in SEEDS:
        s = scene(seed % len(ss.CLASS_NAMES), seed)
        # The camera shakes by at most JITTER pixels: a still actor's measured position moves.
        still = replace(s, actors=np.repeat(s.actors[:1], ss.NUM_FRAMES, axis=0))
        wobble = track(still, 0, camera=True) - track(still, 0)
        assert 0.2 < np.abs(wobble).max() <= ss.JITTER + 0.02
        # Dark distractors over the grey background, moving; the background is not flat.
        empty = replace(s, actor_colour=np.zeros((2, 3), dtype=np.float32), canvas=np.full_like(s.canvas, 128))
        empty = replace(empty, actors=np.full_like(s.actors, -50.0), noise=np.zeros_like(s.noise))
        frames = ss.render(empty)[..., 0].astype(int)
        assert np.all((frames < 100).sum(axis=(1, 2)) >= 2) and np.abs(np.diff(frames, axis=0)).max() > 50
        assert ss.render(clean(s))[..., 0].std() > 0 and ss.render(s)[0, ..., 0].std() > 15


def test_generation_is_reproducible_and_seeded():
    a = ss.generate_video(5, "train", 9, seed=1)
    assert a.dtype == np.uint8 and a.shape == (ss.NUM_FRAMES, ss.FRAME_SIZE, ss.FRAME_SIZE, 3)
    np.testing.assert_array_equal(a, ss.generate_video(5, "train", 9, seed=1))
    assert not np.array_equal(a, ss.generate_video(5, "train", 9, seed=2))
    assert not np.array_equal(a, ss.generate_video(5, "val", 9, seed=1))


def test_written_set_layout_and_annotations(study_set):
    root, train_list, val_list = study_set
    assert (train_list, val_list) == (root / "train.txt", root / "val.txt")
    train, val = load_annotations(train_list), load_annotations(val_list)
    assert train.class_names == list(ss.CLASS_NAMES) == val.class_names
    assert len(train) == 24 and len(val) == 12
    assert [r.label for r in train.records] == [i % 12 for i in range(24)]
    assert all(r.path.is_file() and r.path.parent == root / "train" for r in train.records)
    meta = json.loads((root / "study_set.json").read_text())
    assert meta["seed"] == 3 and meta["half_swap_pairs"] == [[4, 5], [8, 9]]


def test_the_training_pipeline_reads_the_set(study_set):
    root, train_list, val_list = study_set
    config = load_config("study", [f"data.train={train_list}", f"data.val={val_list}"])
    train, val = build_train_dataset(config.data, seed=0), build_eval_dataset(config.data)
    assert len(train) == 24 and len(val) == 12
    for dataset in (train, val):
        for index in (0, 7):
            clip, label, _ = dataset[index]
            assert clip.shape == (3, config.data.num_frames, 32, 32) and label == index % 12
    with open_video(root / "val" / "00006.mp4") as video:
        assert video.num_frames == ss.NUM_FRAMES and video.fps == pytest.approx(ss.FPS)
        decoded = video.get_frames(range(ss.NUM_FRAMES)).astype(int)
    # H.264 is lossy: close to the generated frames, not equal.
    assert np.abs(decoded - ss.generate_video(6, "val", 6, seed=3).astype(int)).mean() < 8


def test_same_seed_same_files_whatever_the_workers(tmp_path, study_set):
    root = study_set[0]
    train, _ = ss.make_study_set(tmp_path / "again", num_train=6, num_val=2, seed=3, workers=1, progress=False)
    for name in ("train/00000.mp4", "train/00005.mp4", "val/00001.mp4"):
        assert (tmp_path / "again" / name).read_bytes() == (root / name).read_bytes(), name
    assert train.read_text().splitlines() == (root / "train.txt").read_text().splitlines()[:6]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_train": 0}, "need at least one video per split"),
        ({"num_val": -1}, "need at least one video per split"),
        ({"seed": -1}, "seed must be a whole number >= 0"),
        ({"workers": 0}, "workers must be >= 1"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, kwargs, message):
    with pytest.raises(DataError, match=message) as info:
        ss.make_study_set(tmp_path / "out", **{"num_train": 2, "num_val": 2, "progress": False, **kwargs})
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_output_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="exists and is not a folder"):
        ss.make_study_set(tmp_path / "file", num_train=1, num_val=1, progress=False)


def test_make_study_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "study-data"
    assert main(["data", "make-study", str(out), "--num-train", "3", "--num-val", "2", "--workers", "1"]) == 0
    assert "wrote 3 training and 2 validation videos" in capsys.readouterr().out
    assert len((out / "val.txt").read_text().splitlines()) == 2
    with pytest.raises(SystemExit) as code:
        main(["data", "make-study", str(out), "--seed", "-3"])
    assert code.value.code == 2 and "expected a number >= 0, got -3" in capsys.readouterr().err
