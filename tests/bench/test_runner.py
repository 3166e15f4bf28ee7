"""run_benchmark against models, matmuls and a clock whose figures are known by hand (see conftest.py)."""

import pytest
import torch

from vast import bench
from vast.bench import specs as bench_specs
from vast.errors import ConfigError

TINY = (1, 3, 4, 32, 32)
FEATURES = 3 * 4 * 32 * 32
MACS = FEATURES * 400  # one Linear(12288 -> 400) per clip
PARAMS = FEATURES * 400 + 400
WEIGHT_BYTES = 4 * PARAMS
INPUT_BYTES, OUTPUT_BYTES = 4 * FEATURES, 4 * 400
MIB = 2**20


@pytest.fixture
def report(known_models, fast_settings):
    rows = [
        bench.ModelSpec("r3d_18", TINY),
        bench.ModelSpec("vast_nano", TINY),
        bench.ModelSpec("vast_nano", TINY, (("fused", True),)),
    ]
    return bench.run_benchmark(rows, fast_settings())


def test_speed_of_a_known_model(report):
    linear = report.results[0]
    # 12288 x 400 multiply-adds in 20 ms; matmul reference: 1 GMAC in 10 ms (BLAS) and in 5 ms (oneDNN)
    assert linear.gmacs == pytest.approx(0.0049152) and linear.params_m == pytest.approx(4.9156)
    assert [linear.latency_ms, linear.latency_min_ms, linear.latency_max_ms] == pytest.approx([20.0] * 3)
    assert linear.repeats == 2
    assert linear.gmacs_per_s == pytest.approx(0.24576)
    assert report.settings["matmul_rates"] == pytest.approx({"matmul blas": 100.0, "matmul onednn": 200.0})
    assert report.matmul_gmacs_per_s == pytest.approx(200.0)  # the faster matmul is 100 %
    assert linear.pct_matmul_peak == pytest.approx(0.12288)
    assert linear.throughput_batch == 2 and linear.throughput_clips_s == pytest.approx(50.0)
    assert linear.compile_s is None and linear.shift_pct is None  # not a VAST row: no shift


def test_shift_share_of_a_known_vast_row(report):
    _, vast, fused = report.results
    assert vast.shift_pct == pytest.approx(25.0) and fused.shift_pct == pytest.approx(25.0)  # 5 of 20 ms
    assert vast.throughput_clips_s == pytest.approx(50.0)


def test_a_vast_row_without_token_shift_modules_has_no_shift_share(known_models, monkeypatch, fast_settings):
    monkeypatch.setitem(known_models, "vast_nano", known_models["r3d_18"])  # no TokenShift inside
    report = bench.run_benchmark([bench.ModelSpec("vast_nano", TINY)], fast_settings(memory=False))
    assert report.results[0].shift_pct is None


def test_memory_of_a_known_model(report):
    linear, vast, fused = report.results
    # inference: weight, bias and input resident, the 1x400 output allocated
    assert linear.infer_peak_mb * MIB == pytest.approx(WEIGHT_BYTES + INPUT_BYTES + OUTPUT_BYTES, abs=4096)
    # training: weights, their gradients and AdamW's two moments at least; at most two more weight-sized
    # temporaries of AdamW's update on top
    assert 4 * WEIGHT_BYTES + INPUT_BYTES <= linear.train_peak_mb * MIB <= 6 * WEIGHT_BYTES + INPUT_BYTES + 4096
    assert linear.train_mb_per_gmac * 0.0049152 == pytest.approx(linear.train_peak_mb)
    # a fused row reports the trained model's parameters and has no training step
    assert fused.params_m == vast.params_m and fused.train_peak_mb is None and vast.train_peak_mb is not None


def test_no_memory_leaves_the_memory_columns_empty(known_models, fast_settings):
    report = bench.run_benchmark([bench.ModelSpec("r3d_18", TINY)], fast_settings(memory=False))
    row = report.results[0]
    assert (row.infer_peak_mb, row.train_peak_mb, row.train_mb_per_gmac) == (None, None, None)
    assert report.settings["memory"] is False and report.settings["threads"] == 1


def test_a_model_that_cannot_run_here_is_skipped_with_its_reason(known_models, monkeypatch, fast_settings):
    class NoKernel(torch.nn.Module):  # like s3d in bf16 on the CPU: avg_pool3d has no such kernel
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(32, 400)

        def forward(self, x):
            if x.device.type != "meta":
                raise NotImplementedError('"avg_pool3d_out_frame" not implemented for \'BFloat16\'')
            return self.proj(x.mean(dim=(2, 3, 4)).repeat(1, 11)[:, :32])

    build = bench_specs.build_module
    monkeypatch.setattr(bench_specs, "build_module", lambda spec: NoKernel() if spec.name == "s3d" else build(spec))
    specs = [bench.ModelSpec("r3d_18", TINY), bench.ModelSpec("s3d", TINY)]
    report = bench.run_benchmark(specs, fast_settings(memory=False))
    assert [r.model for r in report.results] == ["r3d_18"]
    assert report.skipped == {"s3d @ 4x32x32": "\"avg_pool3d_out_frame\" not implemented for 'BFloat16'"}
    with pytest.raises(ConfigError, match="no model can run"):
        bench.run_benchmark([bench.ModelSpec("s3d", TINY)], fast_settings(memory=False))


def test_nothing_to_benchmark_is_a_clear_error(fast_settings):
    with pytest.raises(ConfigError, match="at least one model"):
        bench.run_benchmark([], fast_settings())
