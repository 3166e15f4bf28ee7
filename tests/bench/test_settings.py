"""The process-wide settings a run asks for are applied for the run only; those it does not ask for are
never touched."""

import pytest
import torch

from vast import bench
from vast.bench.settings import applied
from vast.errors import ConfigError

TINY = (1, 3, 4, 32, 32)


@pytest.fixture
def thread_calls(monkeypatch):
    """Every torch.set_num_threads call, still carried out."""
    calls = []
    original = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n) or original(n))
    return calls


def test_threads_are_left_alone_unless_given(thread_calls):
    before = torch.get_num_threads()
    with applied(bench.BenchSettings(threads=None)):
        assert torch.get_num_threads() == before
    assert thread_calls == [] and torch.get_num_threads() == before


def test_given_threads_are_set_for_the_block_and_restored_even_on_error(thread_calls):
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pytest.raises(RuntimeError, match="inside"), applied(bench.BenchSettings(threads=other)):
        assert torch.get_num_threads() == other
        raise RuntimeError("inside")
    assert thread_calls == [other, before] and torch.get_num_threads() == before


def test_zero_threads_is_a_clear_error(thread_calls):
    with pytest.raises(ConfigError, match="--threads must be at least 1"), applied(bench.BenchSettings(threads=0)):
        pass
    assert thread_calls == []


def test_a_run_without_threads_never_sets_them(known_models, fast_settings, thread_calls):
    bench.run_benchmark([bench.ModelSpec("r3d_18", TINY)], fast_settings(threads=None, memory=False))
    points = bench.scaling_specs(["r3d_18"], frames=(4,), sizes=(), base=TINY)
    bench.run_scaling(points, fast_settings(threads=None, memory=False))
    assert thread_calls == []
