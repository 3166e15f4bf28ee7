"""Tables and files of fixed rows, against literal expected text and values read back."""

import csv
import json

import pytest

from vast import bench


def _row(model, inp, gmacs, latency, clips, train):
    """A result whose every figure is given (GMAC/s and its share of a 200 GMAC/s matmul worked out here)."""
    rate = gmacs / (latency / 1e3)
    return bench.BenchResult(model, inp, 1.0, gmacs, latency, latency, latency, 3, rate, 100 * rate / 200, 4, clips,
                             100.0, train, None if train is None else train / gmacs)  # fmt: skip


@pytest.fixture
def report():
    results = [
        bench.BenchResult("vast_tiny", "8x224x224", 28.41, 34.8, 200.4, 195.0, 210.0, 5, 173.64, 71.76, 4, 5.13,
                          310.4, 785.0, 22.557, None, 2.43),
        bench.BenchResult("swin3d_t", "8x224x224", 28.16, 19.7, 274.0, 270.0, 280.0, 3, 71.9, 29.71, 2, 3.7,
                          121.0, None, None, None, None),
    ]  # fmt: skip
    rates = {"matmul blas": 104.0, "matmul onednn": 242.0}
    settings = dict(matmul_size=4096, matmul_gmacs=68.72, matmul_rates=rates, device="cpu", dtype="fp32", threads=2)
    return bench.BenchReport(results, 242.0, settings, {"cpu": "test CPU", "cpu_count": 2})


SCALING = [
    dict(model="vast_tiny", axis="frames", frames=4, size=224, tokens=200704, gmacs=17.4, latency_ms=95.0,
         time_ratio=None, token_ratio=None, growth=None, infer_peak_mb=150.2, memory_ratio=None),
    dict(model="vast_tiny", axis="frames", frames=8, size=224, tokens=401408, gmacs=34.8, latency_ms=209.0,
         time_ratio=2.2, token_ratio=2.0, growth=1.1, infer_peak_mb=240.3, memory_ratio=1.6),
]  # fmt: skip


def test_result_table_as_text(report):
    assert bench.format_results(report) == "\n".join([
        "model                 input TxHxW  params M  GMACs  latency ms  GMAC/s  % matmul  clips/s (batch)  infer MiB  train MiB  train MiB/GMAC  shift %",  # noqa: E501
        "--------------------  -----------  --------  -----  ----------  ------  --------  ---------------  ---------  ---------  --------------  -------",  # noqa: E501
        "vast_tiny               8x224x224      28.4  34.80         200   173.6        72         5.13 (4)        310        785            22.6      2.4",  # noqa: E501
        "swin3d_t                8x224x224      28.2  19.70         274    71.9        30         3.70 (2)        121          -               -        -",  # noqa: E501
        "matmul blas 4096^3              -         -   68.7           -   104.0        43                -          -          -               -        -",  # noqa: E501
        "matmul onednn 4096^3            -         -   68.7           -   242.0       100                -          -          -               -        -",  # noqa: E501
    ])  # fmt: skip


def test_result_table_as_markdown(report):
    assert bench.format_results(report, markdown=True) == "\n".join([
        "| model | input TxHxW | params M | GMACs | latency ms | GMAC/s | % matmul | clips/s (batch) | infer MiB | train MiB | train MiB/GMAC | shift % |",  # noqa: E501
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        "| vast_tiny | 8x224x224 | 28.4 | 34.80 | 200 | 173.6 | 72 | 5.13 (4) | 310 | 785 | 22.6 | 2.4 |",
        "| swin3d_t | 8x224x224 | 28.2 | 19.70 | 274 | 71.9 | 30 | 3.70 (2) | 121 | - | - | - |",
        "| matmul blas 4096^3 | - | - | 68.7 | - | 104.0 | 43 | - | - | - | - | - |",
        "| matmul onednn 4096^3 | - | - | 68.7 | - | 242.0 | 100 | - | - | - | - | - |",
    ])  # fmt: skip


def test_scaling_table():
    assert bench.format_scaling(SCALING) == "\n".join([
        "model        axis  T  HxW  GMACs  latency ms  x time  x tokens  growth  infer MiB  x mem",
        "---------  ------  -  ---  -----  ----------  ------  --------  ------  ---------  -----",
        "vast_tiny  frames  4  224  17.40          95       -         -       -        150      -",
        "vast_tiny  frames  8  224  34.80         209    2.20      2.00    1.10        240   1.60",
    ])  # fmt: skip


def test_compile_table():
    rows = [dict(model="vast_tiny", input="8x224x224", eager_ms=202.0, compiled_ms=188.0, speedup=1.0745,
                 max_abs_diff=2.4e-7, compile_s=10.2)]  # fmt: skip
    assert bench.format_compile(rows, markdown=True) == "\n".join([
        "| model | input TxHxW | eager ms | compiled ms | speedup | max abs diff | compile s |",
        "|---|---|---|---|---|---|---|",
        "| vast_tiny | 8x224x224 | 202 | 188 | 1.07 | 2.4e-07 | 10 |",
    ])  # fmt: skip


def test_comparison_lines_are_ratios_against_the_reference_at_the_same_input():
    results = [
        _row("vast_tiny", "8x224x224", 30.0, 300.0, 3.0, 600.0),
        _row("vast_tiny:fused=True", "8x224x224", 30.0, 240.0, 4.0, None),
        _row("vast_tiny", "16x224x224", 60.0, 600.0, 1.5, None),  # no reference at this input
        _row("swin3d_t", "8x224x224", 20.0, 400.0, 2.0, 800.0),
    ]
    report = bench.BenchReport(results, 200.0, {}, {})
    lines = bench.format_comparison(report).splitlines()
    assert lines == [
        "vast_tiny vs swin3d_t @ 8x224x224: 1.50x the GMACs, 0.75x the latency, 2.00x the GMAC/s, "
        "1.50x the clips/s, 0.75x the training memory, 0.50x per GMAC",
        "vast_tiny:fused=True vs swin3d_t @ 8x224x224: 1.50x the GMACs, 0.60x the latency, 2.50x the GMAC/s, "
        "2.00x the clips/s",
    ]
    assert bench.format_comparison(bench.BenchReport(results[:3], 200.0, {}, {})) == ""


def test_report_files_read_back(report, tmp_path):
    report.scaling = SCALING
    paths = bench.write_report(report, tmp_path / "out")
    assert [p.name for p in paths] == ["bench.json", "bench.csv", "bench.png", "scaling.csv", "scaling.png"]
    with (tmp_path / "out" / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == bench.RESULT_COLUMNS
    assert [(r["model"], r["gmacs"], r["latency_ms"], r["throughput_clips_s"]) for r in rows] == [
        ("vast_tiny", "34.8", "200.4", "5.13"), ("swin3d_t", "19.7", "274.0", "3.7")
    ]  # fmt: skip
    assert rows[1]["train_peak_mb"] == "" and rows[0]["shift_pct"] == "2.43"
    data = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert data["matmul_gmacs_per_s"] == 242.0 and data["machine"] == {"cpu": "test CPU", "cpu_count": 2}
    assert data["results"][0]["train_mb_per_gmac"] == 22.557 and data["settings"]["threads"] == 2
    assert data["scaling"][1]["growth"] == 1.1 and data["skipped"] == {}
    with (tmp_path / "out" / "scaling.csv").open() as handle:
        scaling = list(csv.DictReader(handle))
    assert [(r["frames"], r["latency_ms"], r["time_ratio"]) for r in scaling] == [
        ("4", "95.0", ""), ("8", "209.0", "2.2")
    ]  # fmt: skip
    for png in ("bench.png", "scaling.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_writing_plots_leaves_matplotlib_as_it_was(report, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    bench.write_report(report, tmp_path)
    assert matplotlib.get_backend() == backend and plt.get_fignums() == figures
