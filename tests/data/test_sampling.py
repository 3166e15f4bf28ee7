"""Clip samplers against hand-computed frame indices, for long and short videos; the time samplers
against the index samplers on evenly spaced frames, and against hand-computed times on uneven ones."""

import numpy as np
import pytest

from vast.data.sampling import (
    SAMPLERS,
    DenseSampler,
    MultiViewSampler,
    TimeDenseSampler,
    TimeTSNSampler,
    TSNSampler,
    build_sampler,
    frame_positions,
)


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
    with pytest.raises(ValueError, match="unknown sampling 'uniform'; choose one of tsn, dense, tsn_frames"):
        build_sampler("uniform", 8, training=False)
    with pytest.raises(ValueError, match="stride must be a whole number >= 1"):
        DenseSampler(8, 0)
    with pytest.raises(ValueError, match="num_frames must be"):
        TSNSampler(8).sample(0)


# ---- time samplers ---------------------------------------------------------------------------------


def even(num_frames, fps=30.0, start=0.0):
    return start + np.arange(num_frames) / fps


def rounded_to_ms(num_frames, fps):
    """Times as Matroska stores them: rounded to its 1 ms clock (30 fps: 0, 33, 67, 100 ms ...)."""
    return np.round(np.arange(num_frames) / fps * 1000) / 1000


def test_build_sampler_by_name():
    kinds = {name: build_sampler(name, 8, 2, training=False) for name in SAMPLERS}
    assert SAMPLERS == ("tsn", "dense", "tsn_frames", "dense_frames")
    assert [type(s) for s in kinds.values()] == [TimeTSNSampler, TimeDenseSampler, TSNSampler, DenseSampler]
    assert build_sampler("dense", 8, 2, training=True, fps=15).fps == 15.0
    with pytest.raises(ValueError, match="fps=15 sets the frame rate of 'dense' sampling; 'tsn' has none"):
        build_sampler("tsn", 8, training=False, fps=15)
    with pytest.raises(ValueError, match="fps must be 0"):
        TimeDenseSampler(8, 2, fps=-1)


@pytest.mark.parametrize("clock", ["exact", "offset", "ms"])
def test_time_samplers_pick_the_index_samplers_frames_on_even_times(clock):
    """Constant-frame-rate videos sample as before: the same frames from the same draws."""
    checked = 0
    for num_frames in (1, 2, 3, 5, 8, 16, 31, 100, 257, 1000):
        for fps in (8.0, 29.97, 60.0):
            times = {
                "exact": even(num_frames, fps),
                "offset": even(num_frames, fps, start=12.345),  # first pts not at 0
                "ms": rounded_to_ms(num_frames, fps),
            }[clock]
            for length in (1, 4, 8, 16):
                pairs = [
                    (TSNSampler(length, training=True), TimeTSNSampler(length, training=True)),
                    (DenseSampler(length, 3, training=True), TimeDenseSampler(length, 3, training=True)),
                ]
                if clock != "ms":  # a rate equal to the video's: the same frames on an exact clock
                    pairs.append((DenseSampler(length, 2, training=True), TimeDenseSampler(length, 2, fps=fps)))
                    pairs[-1][1].training = True
                for by_index, by_time in pairs:
                    for seed in range(4):
                        expected = by_index.sample(num_frames, np.random.default_rng(seed))
                        got = by_time.sample(num_frames, np.random.default_rng(seed), times=times)
                        np.testing.assert_array_equal(got, expected)
                    by_index.training = by_time.training = False
                    for views in (1, 3):
                        expected = MultiViewSampler(by_index, views).sample(num_frames)
                        got = MultiViewSampler(by_time, views).sample(num_frames, times=times)
                        np.testing.assert_array_equal(got, expected)
                    checked += 1
    assert checked == 10 * 3 * 4 * (2 if clock == "ms" else 3)


def test_time_samplers_without_times_are_the_index_samplers():
    for n in (1, 5, 100):
        np.testing.assert_array_equal(TimeTSNSampler(8).sample(n), TSNSampler(8).sample(n))
        np.testing.assert_array_equal(TimeDenseSampler(8, 2).sample(n), DenseSampler(8, 2).sample(n))


def test_frame_positions_count_mean_frame_durations():
    np.testing.assert_array_equal(frame_positions(even(5, 30.0)), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(frame_positions(rounded_to_ms(301, 30.0)), np.arange(301))
    # 0.0 .. 0.3 s, then one frame held 1.6 s: the last frame lasts as long as the interval before it.
    uneven = np.array([0.0, 0.1, 0.2, 0.3, 1.9, 2.0])
    np.testing.assert_allclose(frame_positions(uneven), uneven / (2.1 / 6))
    assert frame_positions(np.array([5.0])).tolist() == [0.0]
    assert frame_positions(np.zeros(4)).tolist() == [0, 1, 2, 3]  # no clock: frames are counted


# 10 frames at 10 fps (0.0 .. 0.9 s), then 10 at 5 fps (1.0 .. 2.8 s): the video lasts 3.0 s.
VFR = np.concatenate([np.arange(10) / 10, 1.0 + np.arange(10) * 0.2])


def shown_at(times, moments):
    """The frame on screen at each moment: the last one starting at or before it."""
    return [int(np.searchsorted(times, m, side="right") - 1) for m in moments]


def test_time_tsn_takes_the_frames_at_the_spans_centres():
    # 4 spans of 0.75 s: centres 0.375, 1.125, 1.875, 2.625 s.
    assert shown_at(VFR, [0.375, 1.125, 1.875, 2.625]) == [3, 10, 14, 18]
    assert TimeTSNSampler(4).sample(20, times=VFR).tolist() == [[3, 10, 14, 18]]
    assert TSNSampler(4).sample(20, times=VFR).tolist() == [[2, 7, 12, 17]]  # by index: times ignored


def test_time_tsn_training_draws_inside_each_span_in_proportion_to_time():
    sampler = TimeTSNSampler(4, training=True)
    rng = np.random.default_rng(0)
    draws = np.concatenate([sampler.sample(20, rng, times=VFR) for _ in range(4000)])
    ends = np.append(VFR[1:], 3.0)
    for k in range(4):
        lo, hi = 0.75 * k, 0.75 * (k + 1)
        frames, counts = np.unique(draws[:, k], return_counts=True)
        # Every frame on screen during the span, and no other.
        assert frames.tolist() == [i for i in range(20) if VFR[i] < hi and ends[i] > lo]
        # Each one about as often as its share of the span's time.
        share = (np.minimum(ends[frames], hi) - np.maximum(VFR[frames], lo)) / 0.75
        np.testing.assert_allclose(counts / len(draws), share, atol=0.03)


def test_a_span_without_a_frame_start_takes_the_held_frame():
    held = np.array([0.0, 0.1, 0.2, 0.3, 1.9, 2.0])  # frame 3 is shown from 0.3 s to 1.9 s; ends 2.1 s
    # 6 spans of 0.35 s: centres 0.175, 0.525, 0.875, 1.225, 1.575, 1.925.
    assert TimeTSNSampler(6).sample(6, times=held).tolist() == [[1, 3, 3, 3, 3, 4]]
    sampler = TimeTSNSampler(6, training=True)
    draws = np.concatenate([sampler.sample(6, np.random.default_rng(s), times=held) for s in range(200)])
    assert set(draws[:, 2]) == {3} and set(draws[:, 3]) == {3}


def test_time_dense_follows_the_clock():
    # Own mean rate (20 frames in 3 s): stride 2 is 0.3 s; the middle of 20 - 7 + 1 = 14 starts is 7.
    own = TimeDenseSampler(4, 2).sample(20, times=VFR)
    assert own.tolist() == [shown_at(VFR, [1.05, 1.35, 1.65, 1.95])] == [[10, 11, 13, 14]]
    # At 10 fps, stride 2 is 0.2 s (4/3 mean frames): a clip spans 4 mean frames, 16 starts, the middle 8.
    at_10 = TimeDenseSampler(4, 2, fps=10).sample(20, times=VFR)
    assert at_10.tolist() == [shown_at(VFR, 0.15 * 8 + 0.2 * np.arange(4))] == [[11, 12, 13, 14]]
    # On an even 30 fps clock, 15 fps at stride 1 takes every other frame (a clip spans 7: 94 starts).
    assert TimeDenseSampler(4, 1, fps=15).sample(100, times=even(100)).tolist() == [[47, 49, 51, 53]]
    # A clip longer than the video starts at 0 and holds the last frame: at 0, 2, 4 and 6 s.
    assert TimeDenseSampler(4, 2, fps=1).sample(20, times=VFR).tolist() == [[0, 15, 19, 19]]
