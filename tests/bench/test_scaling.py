"""Scaling sweeps against models whose time and memory grow in known ways with the input."""

import pytest
import torch

from vast import bench
from vast.bench import specs as bench_specs

BASE = (1, 3, 4, 32, 32)


def test_sweep_points_vary_one_axis_at_a_time():
    points = bench.scaling_specs(["vast_nano", "swin3d_t"], frames=(4, 8), sizes=(32, 64), base=BASE)
    assert [(axis, s.name, s.input_shape[2:]) for axis, s in points] == [
        ("frames", "vast_nano", (4, 32, 32)), ("frames", "vast_nano", (8, 32, 32)),
        ("size", "vast_nano", (4, 32, 32)), ("size", "vast_nano", (4, 64, 64)),
        ("frames", "swin3d_t", (4, 32, 32)), ("frames", "swin3d_t", (8, 32, 32)),
        ("size", "swin3d_t", (4, 32, 32)), ("size", "swin3d_t", (4, 64, 64)),
    ]  # fmt: skip
    assert bench.scaling.tokens_of(points[3][1]) == 4 * 64 * 64


class Doubling(torch.nn.Module):
    """Takes ``(voxels / 4096) ** power`` ms on the clock and allocates an output as large as
    its input: twice the input's bytes at its peak."""

    def __init__(self, clock, power):
        super().__init__()
        self.clock, self.power = clock, power

    def forward(self, x):
        if x.device.type != "meta":
            self.clock.advance(1e-3 * (x[0, 0].numel() / 4096) ** self.power)
        return x.clone()


@pytest.mark.parametrize(("model", "power"), [("vast_nano", 1), ("swin3d_t", 2)])
def test_growth_is_one_for_linear_cost_and_two_for_quadratic(clock, monkeypatch, fast_settings, model, power):
    monkeypatch.setattr(bench_specs, "build_module", lambda spec: Doubling(clock, power))
    points = bench.scaling_specs([model], frames=(4, 8), sizes=(32, 64), base=BASE)
    rows = bench.run_scaling(points, fast_settings(memory=True))
    assert [(r["axis"], r["frames"], r["size"], r["tokens"]) for r in rows] == [
        ("frames", 4, 32, 4096), ("frames", 8, 32, 8192), ("size", 4, 32, 4096), ("size", 4, 64, 16384)
    ]  # fmt: skip
    assert [r["token_ratio"] for r in rows] == [None, 2.0, None, 4.0]
    assert rows[1]["time_ratio"] == pytest.approx(2.0**power) and rows[3]["time_ratio"] == pytest.approx(4.0**power)
    assert [rows[1]["growth"], rows[3]["growth"]] == pytest.approx([2.0 ** (power - 1), 4.0 ** (power - 1)])
    input_bytes = 3 * 4 * 32 * 32 * 4
    assert rows[0]["infer_peak_mb"] * 2**20 == 2 * input_bytes  # the input and an output as large
    assert [rows[1]["memory_ratio"], rows[3]["memory_ratio"]] == pytest.approx([2.0, 4.0])
    assert rows[0]["growth"] is None and rows[0]["gmacs"] == 0.0
