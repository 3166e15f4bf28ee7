"""The benchmark engine on vast_nano with tiny inputs: columns, arithmetic, files, memory, names."""

import csv
import json

import pytest
import torch

from vast.engine import benchmark as bench
from vast.errors import ConfigError, UnknownModelError
from vast.ops.linear import Linear, onednn_linear_available

TINY = (1, 3, 4, 32, 32)


def _settings(**overrides):
    values = dict(warmup=1, repeats=2, throughput_batch=2, throughput_repeats=1, matmul_size=128)
    values.update(progress=False, threads=1)  # one thread: no OpenMP waits on a busy machine
    values.update(overrides)
    return bench.BenchSettings(**values)


@pytest.fixture(scope="module")
def report():
    specs = [bench.ModelSpec("vast_nano", TINY), bench.ModelSpec("vast_nano", TINY, (("fused", True),))]
    return bench.run_benchmark(specs, _settings())


def test_every_row_has_its_figures_and_gmacs_per_second_is_gmacs_over_latency(report):
    plain, fused = report.results
    for row in report.results:
        assert row.gmacs == pytest.approx(bench.count_flops(bench.create_model("vast_nano"), TINY)[0])
        assert row.gmacs_per_s == pytest.approx(row.gmacs / (row.latency_ms / 1e3))
        assert row.pct_matmul_peak == pytest.approx(100 * row.gmacs_per_s / report.matmul_gmacs_per_s)
        assert row.latency_min_ms <= row.latency_ms <= row.latency_max_ms and row.repeats == 2
        assert row.throughput_batch == 2 and row.throughput_clips_s > 0
        assert row.infer_peak_mb > 0 and 0 < row.shift_pct < 100
    assert plain.params_m == fused.params_m  # a fused row reports the trained model's parameters
    assert plain.train_peak_mb > plain.infer_peak_mb and fused.train_peak_mb is None
    assert report.matmul_gmacs_per_s == max(report.settings["matmul_rates"].values())


def test_report_files_have_the_expected_columns(report, tmp_path):
    paths = bench.write_report(report, tmp_path)
    assert sorted(p.name for p in paths) == ["bench.csv", "bench.json", "bench.png"]
    with (tmp_path / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == bench.RESULT_COLUMNS and len(rows) == 2
    assert float(rows[0]["gmacs_per_s"]) == pytest.approx(float(rows[0]["gmacs"]) / float(rows[0]["latency_ms"]) * 1e3)
    data = json.loads((tmp_path / "bench.json").read_text())
    assert {"machine", "settings", "matmul_gmacs_per_s", "results"} <= set(data)
    assert data["machine"]["cpu_count"] >= 1 and data["settings"]["threads"] == 1
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    assert "vast_nano:fused=True" in bench.format_results(report)


def test_peak_memory_counts_what_a_step_allocates():
    def allocate():
        a = torch.empty(1_000_000)  # 4 MB, freed before the next one
        del a
        b = torch.empty(2_000_000)  # 8 MB
        return b.sum()

    peak = bench.peak_memory(allocate, torch.device("cpu"), resident=1000)
    assert 8_000_000 + 1000 <= peak < 8_100_000 + 1000
    x = torch.zeros(10, 10)
    assert bench.tensor_bytes([x, x[1:], x.view(100)]) == 400  # views of one storage count once


@pytest.mark.skipif(not onednn_linear_available(), reason="no oneDNN in this PyTorch build")
def test_inference_peak_counts_the_packed_weights():
    model = torch.nn.Sequential(Linear(256, 256, bias=False)).eval()
    x = torch.randn(1, 256)
    with torch.inference_mode():
        model(x)  # the warm-up pass packs the weight
    weight, packed, io = 256 * 256 * 4, 256 * 256 * 4, 2 * 256 * 4
    assert weight + packed <= bench.inference_peak(model, x) <= weight + packed + io + 4096


def test_interleaving_runs_round_robin():
    order = []
    runners = {name: (lambda n=name: order.append(n)) for name in "abc"}
    times = bench.interleaved_times(runners, dict(a=2, b=1, c=2))
    assert order == ["a", "b", "c", "a", "c"] and [len(times[k]) for k in "abc"] == [2, 1, 2]


def test_scaling_reports_growth_per_token():
    points = bench.scaling_specs(["vast_nano"], frames=(4, 8), sizes=(32, 64), base=TINY)
    rows = bench.run_scaling(points, _settings(memory=True))
    assert [(r["axis"], r["frames"], r["size"]) for r in rows] == [
        ("frames", 4, 32), ("frames", 8, 32), ("size", 4, 32), ("size", 4, 64)
    ]  # fmt: skip
    assert rows[0]["growth"] is None and rows[1]["token_ratio"] == 2 and rows[3]["token_ratio"] == 4
    assert rows[1]["growth"] == pytest.approx(rows[1]["time_ratio"] / 2)
    assert rows[1]["gmacs"] == pytest.approx(2 * rows[0]["gmacs"], rel=0.01)  # VAST: linear in tokens


def test_peer_inputs_come_from_the_weights_and_the_common_clip():
    assert bench.weights_input("mvit_v2_s") == (1, 3, 16, 224, 224)
    assert bench.weights_input("r2plus1d_18") == (1, 3, 16, 112, 112)
    assert bench.common_input("mvit_v2_s") == (1, 3, 16, 224, 224)  # mvit needs 16 frames
    assert bench.common_input("swin3d_t") == bench.COMMON_INPUT
    specs = bench.default_specs(["vast_nano"], peers=True, quick=True)
    assert [s.name for s in specs] == ["vast_nano", *bench.PEERS]


def test_bad_names_options_devices_and_dtypes_raise_clear_errors():
    with pytest.raises(UnknownModelError, match="did you mean vast_nano"):
        bench.parse_model_arg("vast_nan")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        bench.parse_model_arg("vast_nano:t_patch")
    with pytest.raises(ConfigError, match="VAST models only"):
        bench.parse_model_arg("swin3d_t:t_patch=2")
    assert bench.parse_model_arg("vast_tiny:t_patch=2,norm=layernorm") == (
        "vast_tiny", (("t_patch", 2), ("norm", "layernorm"))
    )  # fmt: skip
    with pytest.raises(ConfigError, match="dtype"):
        bench.resolve_dtype("fp8")
    with pytest.raises(ConfigError, match="device"):
        bench.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            bench.resolve_device("cuda")


def test_interleaved_times_match_a_known_duration():
    """Against time.sleep, an independent clock of known length: each pass is timed alone."""
    import time

    times = bench.interleaved_times({"a": lambda: time.sleep(0.02), "b": lambda: time.sleep(0.005)}, dict(a=3, b=3))
    assert all(0.02 <= t < 0.06 for t in times["a"]) and all(0.005 <= t < 0.045 for t in times["b"])


@pytest.mark.slow
def test_compile_comparison_reports_speedup_and_output_difference():
    specs = [bench.ModelSpec("vast_nano", TINY), bench.ModelSpec("vast_nano", TINY, (("fused", True),))]
    rows = bench.run_compile_comparison(specs, _settings())
    assert [r["model"] for r in rows] == ["vast_nano", "vast_nano:fused=True"]
    for row in rows:
        assert row["speedup"] == pytest.approx(row["eager_ms"] / row["compiled_ms"])
        assert row["max_abs_diff"] < 1e-4 and row["compile_s"] > 0
    assert "speedup" in bench.format_compile(rows, markdown=True)


def test_a_model_that_cannot_run_here_is_skipped_with_its_reason(monkeypatch):
    class NoKernel(torch.nn.Module):  # like s3d in bf16 on the CPU: avg_pool3d has no such kernel
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(32, 400)

        def forward(self, x):
            if x.device.type != "meta":
                raise NotImplementedError('"avg_pool3d_out_frame" not implemented for \'BFloat16\'')
            return self.proj(x.mean(dim=(2, 3, 4)).repeat(1, 11)[:, :32])

    build = bench._build
    monkeypatch.setattr(bench, "_build", lambda spec: NoKernel() if spec.name == "r3d_18" else build(spec))
    specs = [bench.ModelSpec("vast_nano", TINY), bench.ModelSpec("r3d_18", TINY)]
    report = bench.run_benchmark(specs, _settings(memory=False))
    assert [r.model for r in report.results] == ["vast_nano"]
    assert report.skipped == {"r3d_18 @ 4x32x32": "\"avg_pool3d_out_frame\" not implemented for 'BFloat16'"}
    monkeypatch.setattr(bench, "_build", lambda spec: NoKernel())
    with pytest.raises(ConfigError, match="no model can run"):
        bench.run_benchmark([bench.ModelSpec("r3d_18", TINY)], _settings(memory=False))


def test_comparison_lines_are_ratios_against_the_reference_at_the_same_input():
    def row(model, inp, gmacs, latency, clips, train):
        rate = gmacs / (latency / 1e3)
        return bench.BenchResult(model, inp, 1.0, gmacs, latency, latency, latency, 3, rate, 50.0, 4, clips,
                                 100.0, train, None if train is None else train / gmacs)  # fmt: skip

    results = [
        row("vast_tiny", "8x224x224", 30.0, 300.0, 3.0, 600.0),
        row("vast_tiny:fused=True", "8x224x224", 30.0, 240.0, 4.0, None),
        row("vast_tiny", "16x224x224", 60.0, 600.0, 1.5, None),  # no reference at this input
        row("swin3d_t", "8x224x224", 20.0, 400.0, 2.0, 800.0),
    ]
    report = bench.BenchReport(results, 100.0, {}, {})
    lines = bench.format_comparison(report).splitlines()
    assert lines == [
        "vast_tiny vs swin3d_t @ 8x224x224: 1.50x the GMACs, 0.75x the latency, 2.00x the GMAC/s, "
        "1.50x the clips/s, 0.75x the training memory, 0.50x per GMAC",
        "vast_tiny:fused=True vs swin3d_t @ 8x224x224: 1.50x the GMACs, 0.60x the latency, 2.50x the GMAC/s, "
        "2.00x the clips/s",
    ]
    assert bench.format_comparison(bench.BenchReport(results[:3], 100.0, {}, {})) == ""
