"""`vast bench` end to end: vast_nano on a tiny clip, a model whose figures are known by hand, the process
settings it leaves alone unless asked, and its one-line errors."""

import csv
import json

import pytest
import torch
from torch import nn

from vast import bench
from vast.bench import allocator, runner, timing
from vast.bench import specs as bench_specs
from vast.cli.main import main

QUICK_TINY = ["--frames", "4", "--size", "32", "--quick", "--quiet"]
TINY_ARGS = [*QUICK_TINY, "--threads", "1"]


class Clock:
    """A ``perf_counter`` that moves only when a model says a pass took time."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class KnownLinear(nn.Module):
    """Linear(3 * 4 * 32 * 32 -> 400) on the flattened clip, 20 ms per clip on the clock."""

    def __init__(self, clock):
        super().__init__()
        self.clock, self.proj = clock, nn.Linear(12288, 400)

    def forward(self, x):
        if x.device.type != "meta":
            self.clock.advance(0.020 * x.shape[0])
        return self.proj(x.flatten(1))


@pytest.fixture
def known(monkeypatch):
    """``r3d_18`` is :class:`KnownLinear`; the matmul reference does 1 GMAC in 5 ms (200 GMAC/s)."""
    clock = Clock()
    monkeypatch.setattr(timing, "time", clock)
    monkeypatch.setattr(bench_specs, "build_module", lambda spec: KnownLinear(clock))
    monkeypatch.setattr(runner, "matmul_runners", lambda *args: ({"matmul blas": lambda: clock.advance(0.005)}, 1.0))


def test_bench_prints_the_table_and_writes_json_csv_png(tmp_path, capsys):
    code = main(["bench", "vast_nano", "vast_nano:fused=True", *TINY_ARGS, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert "vast_nano" in out and "GMAC/s" in out and "matmul" in out and "4x32x32" in out
    assert {p.name for p in tmp_path.iterdir()} == {"bench.json", "bench.csv", "bench.png"}
    with (tmp_path / "bench.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["model"] for r in rows] == ["vast_nano", "vast_nano:fused=True"]
    settings = json.loads((tmp_path / "bench.json").read_text())["settings"]
    quick = dict(warmup=1, repeats=3, row_budget_s=3.0, throughput_batch=2, throughput_repeats=1, matmul_size=2048)
    quick.update(train_memory=False, memory=True, threads=1, onednn=True, device="cpu", dtype="fp32")
    assert {key: settings[key] for key in quick} == quick


def test_figures_of_a_known_model_reach_the_table_and_the_csv(known, tmp_path, capsys):
    assert main(["bench", "r3d_18", *TINY_ARGS, "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    # 4.9156 M params, 0.0049152 GMACs in 20 ms = 0.246 GMAC/s = 0.12 % of 200; 2 clips in 40 ms;
    # weights, input and output: 19,713,152 bytes = 18.8 MiB
    cells = ["r3d_18", "4x32x32", "4.9", "0.00", "20", "0.2", "0", "50.00", "(2)", "19", "-", "-", "-"]
    assert table[2].split() == cells
    with (tmp_path / "bench.csv").open() as handle:
        (row,) = csv.DictReader(handle)
    figures = {key: float(row[key]) for key in ("gmacs", "latency_ms", "gmacs_per_s", "pct_matmul_peak")}
    hand = dict(gmacs=0.0049152, latency_ms=20.0, gmacs_per_s=0.24576, pct_matmul_peak=0.12288)
    assert figures == pytest.approx(hand)
    assert row["throughput_batch"] == "2" and float(row["throughput_clips_s"]) == pytest.approx(50.0)
    assert float(row["infer_peak_mb"]) * 2**20 == pytest.approx(19_713_152, abs=4096)


def test_malloc_is_left_alone_unless_tuned(known, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(allocator, "set_malloc_reuse", lambda enable=True: calls.append(enable) or True)
    assert main(["bench", "r3d_18", *TINY_ARGS, "--no-memory"]) == 0
    assert calls == []
    assert main(["bench", "r3d_18", *TINY_ARGS, "--no-memory", "--malloc", "tuned"]) == 0
    assert calls == [True, False]  # on for the run, glibc's defaults back afterwards


def test_help_says_malloc_is_left_as_it_is_by_default(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "glibc malloc: as the process has it (default)" in text and "opt- in" in text


def test_threads_are_set_only_when_given_and_restored(known, monkeypatch, capsys):
    calls = []
    original = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: calls.append(n) or original(n))
    before = torch.get_num_threads()
    assert main(["bench", "r3d_18", *QUICK_TINY, "--no-memory"]) == 0
    assert calls == []
    assert main(["bench", "r3d_18", *QUICK_TINY, "--no-memory", "--threads", "1"]) == 0
    assert calls == [1, before] and torch.get_num_threads() == before


def test_scaling_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(bench, "SCALING_FRAMES", (4, 8))
    monkeypatch.setattr(bench, "SCALING_SIZES", (32, 64))
    code = main(["bench", "vast_nano", "--scaling", *TINY_ARGS, "--no-memory", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "growth" in out
    with (tmp_path / "scaling.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["axis"], r["frames"], r["size"], r["tokens"], r["token_ratio"]) for r in rows] == [
        ("frames", "4", "32", "4096", ""), ("frames", "8", "32", "8192", "2.0"),
        ("size", "4", "32", "4096", ""), ("size", "4", "64", "16384", "4.0"),
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
        (["bench", "vast_nano", "--threads", "0", "--quiet"], "--threads must be at least 1"),
        (["bench", "vast_nano", "--size", "30", "--quick", "--quiet"], "H, W multiples of 4"),
        (["bench", "vast_nano", "--out", __file__], "is a file; give a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cuda_without_a_gpu_is_a_one_line_error(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["bench", "vast_nano", "--device", "cuda"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_blas_flag_builds_fused_rows_on_f_linear_and_says_so(tmp_path, capsys):
    from vast.deploy import onednn_linear_available

    args = ["bench", "vast_nano:fused=True", *TINY_ARGS, "--out", str(tmp_path)]
    assert main([*args, "--blas"]) == 0
    out = capsys.readouterr().out
    assert "vast_nano:fused=True,onednn=False" in out and "fused VAST on F.linear" in out
    rows = json.loads((tmp_path / "bench.json").read_text())
    assert rows["settings"]["onednn"] is False
    # Without oneDNN packing the fused row holds no packed weight copies: inference memory is its weights,
    # input and activations only, less than the same row on oneDNN (one more copy of every projection).
    blas_memory = rows["results"][0]["infer_peak_mb"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fused VAST on F.linear" not in out and "onednn=False" not in out
    onednn_memory = json.loads((tmp_path / "bench.json").read_text())["results"][0]["infer_peak_mb"]
    if onednn_linear_available():
        assert onednn_memory > blas_memory
