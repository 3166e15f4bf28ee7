"""Clip samplers against hand-computed frame indices, for long and short videos."""

import numpy as np
import pytest

from vast.data.sampling import DenseSampler, MultiViewSampler, TSNSampler, build_sampler


class FixedOffsets:
    """Stands in for a numpy Generator whose draws we choose."""

    def __init__(self, values):
        self.values = np.asarray(values, dtype=float)

    def random(self, size):
        assert size == len(self.values)
        return self.values


def rows(array):
    assert array.dtype == np.int64
    return array.tolist()


@pytest.mark.parametrize(
    ("num_frames", "segments", "expected"),
    [
        (100, 8, [6, 18, 31, 43, 56, 68, 81, 93]),  # centres of 12.5-frame segments
        (8, 8, [0, 1, 2, 3, 4, 5, 6, 7]),
        (5, 8, [0, 0, 1, 2, 2, 3, 4, 4]),  # short: frames repeat, in order
        (1, 3, [0, 0, 0]),
    ],
)
def test_tsn_eval_takes_segment_centres(num_frames, segments, expected):
    assert rows(TSNSampler(segments).sample(num_frames)) == [expected]


def test_tsn_training_takes_the_drawn_offset_in_each_segment():
    sampler = TSNSampler(8, training=True)
    offsets = FixedOffsets([0.0, 0.999, 0.5, 0.25, 0.0, 0.0, 0.0, 0.9])
    # floor((i + u_i) * 100 / 8)
    assert rows(sampler.sample(100, offsets)) == [[0, 24, 31, 40, 50, 62, 75, 98]]
    assert rows(sampler.sample(5, offsets)) == [[0, 1, 1, 2, 2, 3, 3, 4]]


def test_tsn_training_covers_each_segment_uniformly():
    sampler = TSNSampler(4, training=True)
    rng = np.random.default_rng(0)
    draws = np.concatenate([sampler.sample(16, rng) for _ in range(4000)])
    for segment in range(4):
        values, counts = np.unique(draws[:, segment], return_counts=True)
        assert values.tolist() == list(range(4 * segment, 4 * segment + 4))
        assert counts.min() > 0.8 * 1000 and counts.max() < 1.2 * 1000


def test_training_is_reproducible_from_the_generator():
    for sampler in (TSNSampler(8, training=True), DenseSampler(8, 2, training=True)):
        first = [sampler.sample(300, np.random.default_rng(7)) for _ in range(2)]
        np.testing.assert_array_equal(first[0], first[1])
        other = np.concatenate([sampler.sample(300, np.random.default_rng(8)) for _ in range(5)])
        assert not all(np.array_equal(row, first[0][0]) for row in other)
        with pytest.raises(ValueError, match="needs rng"):
            sampler.sample(300)


@pytest.mark.parametrize(
    ("num_frames", "length", "stride", "expected"),
    [
        (100, 8, 4, [36, 40, 44, 48, 52, 56, 60, 64]),  # 72 possible starts, the middle one
        (16, 16, 1, list(range(16))),
        (17, 16, 1, list(range(1, 17))),  # 2 starts: the second (floor(0.5 * 2))
        (5, 4, 2, [0, 2, 4, 4]),  # short: start at 0, clamp to the last frame
        (10, 8, 2, [0, 2, 4, 6, 8, 9, 9, 9]),
        (1, 4, 3, [0, 0, 0, 0]),
    ],
)
def test_dense_eval_takes_the_middle_clip(num_frames, length, stride, expected):
    assert rows(DenseSampler(length, stride).sample(num_frames)) == [expected]


def test_dense_training_starts_anywhere_that_fits():
    sampler = DenseSampler(8, 4, training=True)  # spans 29 frames: starts 0..71 in 100 frames
    rng = np.random.default_rng(0)
    clips = np.concatenate([sampler.sample(100, rng) for _ in range(3000)])
    np.testing.assert_array_equal(clips - clips[:, :1], np.tile(np.arange(0, 32, 4), (len(clips), 1)))
    starts = np.bincount(clips[:, 0], minlength=72)
    assert len(starts) == 72 and starts.min() > 0  # every start, and none past 71
    short = [sampler.sample(10, rng) for _ in range(20)]
    assert all(rows(clip) == [[0, 4, 8, 9, 9, 9, 9, 9]] for clip in short)


def test_multi_view_dense_spreads_clip_starts():
    sampler = MultiViewSampler(DenseSampler(8, 4), num_clips=3)
    # 101 frames: 73 starts; positions 1/6, 1/2, 5/6 -> starts 12, 36, 60
    expected = [[start + 4 * j for j in range(8)] for start in (12, 36, 60)]
    assert rows(sampler.sample(101)) == expected
    assert sampler.num_clips == 3 and sampler.clip_length == 8
    assert rows(sampler.sample(10)) == [[0, 4, 8, 9, 9, 9, 9, 9]] * 3  # short: identical clamped clips


def test_multi_view_tsn_spreads_offsets_inside_segments():
    sampler = MultiViewSampler(TSNSampler(4), num_clips=2)
    assert rows(sampler.sample(100)) == [[6, 31, 56, 81], [18, 43, 68, 93]]


def test_one_view_equals_the_eval_sampler():
    for base in (TSNSampler(8), DenseSampler(8, 3)):
        for n in (3, 50, 301):
            np.testing.assert_array_equal(MultiViewSampler(base, 1).sample(n), base.sample(n))


def test_build_sampler_and_bad_arguments():
    tsn = build_sampler("tsn", 8, training=True)
    # Training TSN: the drawn offset in each of 8 segments; 0.5 everywhere gives floor((i + 0.5) * 100 / 8).
    assert rows(tsn.sample(100, FixedOffsets([0.5] * 8))) == [[6, 18, 31, 43, 56, 68, 81, 93]]
    with pytest.raises(ValueError, match="needs rng"):
        tsn.sample(100)  # training mode: no draw without a generator
    dense = build_sampler("dense", 16, 2, training=False, num_clips=4)
    # 16 frames at stride 2 span 31 of 200 frames: 170 starts; clip k starts at floor((k + 0.5) / 4 * 170).
    assert rows(dense.sample(200)) == [[start + 2 * j for j in range(16)] for start in (21, 63, 106, 148)]
    with pytest.raises(ValueError, match="for evaluation"):
        build_sampler("dense", 8, training=True, num_clips=2)
    with pytest.raises(ValueError, match="unknown sampling 'uniform'"):
        build_sampler("uniform", 8, training=False)
    with pytest.raises(ValueError, match="stride must be a whole number >= 1"):
        DenseSampler(8, 0)
    with pytest.raises(ValueError, match="num_frames must be"):
        TSNSampler(8).sample(0)
