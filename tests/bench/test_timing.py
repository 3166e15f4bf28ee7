"""Interleaved timing against time.sleep and a clock known by hand; the matmul reference."""

import time

import pytest
import torch
from tqdm import tqdm

from vast import bench
from vast.bench import timing


def test_interleaving_runs_round_robin():
    order = []
    runners = {name: (lambda n=name: order.append(n)) for name in "abc"}
    times = bench.interleaved_times(runners, dict(a=2, b=1, c=2))
    assert order == ["a", "b", "c", "a", "c"] and [len(times[k]) for k in "abc"] == [2, 1, 2]


def test_interleaved_times_match_a_known_duration():
    """Against time.sleep, an independent clock of known length: each pass is timed alone."""
    times = bench.interleaved_times({"a": lambda: time.sleep(0.02), "b": lambda: time.sleep(0.005)}, dict(a=3, b=3))
    assert all(0.02 <= t < 0.06 for t in times["a"]) and all(0.005 <= t < 0.045 for t in times["b"])


def test_slow_rows_get_fewer_repeats_but_at_least_three():
    settings = bench.BenchSettings(repeats=5, row_budget_s=8.0)
    counts = timing.repeat_counts({"fast": 0.1, "2s": 2.0, "4s": 4.0, "slow": 60.0}, settings)
    assert counts == {"fast": 5, "2s": 4, "4s": 3, "slow": 3}
    assert timing.repeat_counts({"fast": 0.1}, bench.BenchSettings(repeats=2)) == {"fast": 2}


def test_warm_up_then_time_and_report_runners_that_cannot_run(clock):
    def broken():
        raise NotImplementedError("no kernel here\nsecond line")

    runners = {"fast": lambda: clock.advance(0.5), "slow": lambda: clock.advance(4.0), "broken": broken}
    settings = bench.BenchSettings(warmup=2, repeats=5, row_budget_s=8.0)
    times, first, failed = timing.warm_and_time(runners, settings, lambda: None, tqdm(disable=True, total=0))
    assert failed == {"broken": "no kernel here"} and set(runners) == {"fast", "slow"}
    assert first == pytest.approx({"fast": 0.5, "slow": 4.0})
    assert times == {"fast": pytest.approx([0.5] * 5), "slow": pytest.approx([4.0] * 3)}


def test_clips_per_second_of_known_passes(clock):
    runners = {"b4": lambda: clock.advance(0.1), "b2": lambda: clock.advance(0.25)}  # one pass = one batch
    settings = bench.BenchSettings(warmup=1, throughput_repeats=3)
    result = timing.clips_per_second(runners, {"b4": 4, "b2": 2}, settings, lambda: None, tqdm(disable=True, total=0))
    assert result == {"b4": (4, pytest.approx(40.0)), "b2": (2, pytest.approx(8.0))}


def test_heavy_rows_are_timed_at_batch_two():
    settings = bench.BenchSettings(throughput_batch=4, throughput_gmacs_budget=160.0)
    assert timing.throughput_batch(40.0, settings) == 4 and timing.throughput_batch(40.1, settings) == 2
    assert timing.throughput_batch(500.0, bench.BenchSettings(throughput_batch=1)) == 1


def test_matmul_reference_multiplies_its_operands():
    runners, gmacs = timing.matmul_runners(torch.device("cpu"), torch.float32, 128)
    assert gmacs == 128**3 / 1e9 == 0.002097152
    blas = runners["matmul blas"]()
    assert blas.shape == (128, 128)
    if "matmul onednn" in runners:  # another library's product of the same operands
        torch.testing.assert_close(runners["matmul onednn"](), blas, rtol=1e-4, atol=1e-3)
