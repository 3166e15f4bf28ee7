"""`vast bench` end to end on vast_nano with a tiny clip, and its one-line errors."""

import csv
import json

import pytest

from vast.cli.main import main
from vast.engine import benchmark as bench

TINY_ARGS = ["--frames", "4", "--size", "32", "--threads", "1", "--quick", "--quiet"]


def test_bench_prints_the_table_and_writes_json_csv_png(tmp_path, capsys):
    code = main(["bench", "vast_nano", "vast_nano:fused=True", *TINY_ARGS, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "vast_nano" in out and "GMAC/s" in out and "matmul" in out and "4x32x32" in out
    assert {p.name for p in tmp_path.iterdir()} == {"bench.json", "bench.csv", "bench.png"}
    with (tmp_path / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == ["vast_nano", "vast_nano:fused=True"]
    for row in rows:
        assert float(row["gmacs_per_s"]) == pytest.approx(float(row["gmacs"]) / float(row["latency_ms"]) * 1e3)
    assert json.loads((tmp_path / "bench.json").read_text())["settings"]["threads"] == 1


def test_scaling_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "SCALING_FRAMES", (4, 8))
    monkeypatch.setattr(bench, "SCALING_SIZES", (32, 64))
    code = main(["bench", "vast_nano", "--scaling", *TINY_ARGS, "--no-memory", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "growth" in out
    with (tmp_path / "scaling.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["axis"], r["frames"], r["size"]) for r in rows] == [
        ("frames", "4", "32"), ("frames", "8", "32"), ("size", "4", "32"), ("size", "4", "64")
    ]  # fmt: skip
    assert (tmp_path / "scaling.png").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "vast_tinyy"], "unknown model 'vast_tinyy'; did you mean vast_tiny"),
        (["bench", "vast_nano", "--dtype", "fp8"], "unknown dtype 'fp8'"),
        (["bench", "vast_nano", "--device", "tpu"], "unknown device 'tpu'"),
        (["bench", "vast_nano:t_patch"], "KEY=VALUE"),
        (["bench", "vast_nano", "--batch", "0"], "--batch must be a positive integer"),
        (["bench", "vast_nano", "--size", "30", "--quick", "--quiet"], "H, W multiples of 4"),
        (["bench", "vast_nano", "--out", __file__], "is a file; give a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["bench", "vast_nano", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_blas_flag_runs_vast_on_f_linear_and_says_so(tmp_path, capsys, monkeypatch):
    import vast.ops.linear as linear_ops

    calls = []
    original = linear_ops._onednn_linear
    monkeypatch.setattr(linear_ops, "_onednn_linear", lambda *a: calls.append(1) or original(*a))
    code = main(["bench", "vast_nano", *TINY_ARGS, "--no-memory", "--blas", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "VAST on F.linear" in out and calls == []
    assert json.loads((tmp_path / "bench.json").read_text())["settings"]["onednn"] is False
    assert linear_ops.onednn_linear_enabled() == linear_ops.onednn_linear_available()  # restored afterwards
    main(["bench", "vast_nano", *TINY_ARGS, "--no-memory"])
    assert "VAST on F.linear" not in capsys.readouterr().out
    assert calls or not linear_ops.onednn_linear_available()
