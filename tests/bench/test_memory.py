"""Peak memory against tensors and models whose bytes are known by hand."""

import torch

from vast import bench
from vast.bench import specs as bench_specs

CPU = torch.device("cpu")


def test_peak_memory_counts_what_a_step_allocates():
    def allocate():
        a = torch.empty(1_000_000)  # 4 MB, freed before the next one
        del a
        b = torch.empty(2_000_000)  # 8 MB
        return b.sum()

    peak = bench.peak_memory(allocate, CPU, resident=1000)
    assert 8_000_000 + 1000 <= peak < 8_100_000 + 1000


def test_peak_memory_of_tensors_alive_together():
    def allocate():
        a = torch.empty(1_000_000)  # 4 MB
        b = torch.empty(500_000, dtype=torch.float64)  # 4 MB, while a is alive
        return a, b

    assert 8_000_000 <= bench.peak_memory(allocate, CPU, resident=0) < 8_100_000


def test_tensor_bytes_counts_each_storage_once():
    x = torch.zeros(10, 10)
    assert bench.tensor_bytes([x, x[1:], x.view(100)]) == 400  # views of one storage count once
    assert bench.tensor_bytes([x, torch.zeros(3, dtype=torch.int16), None]) == 406
    assert bench.tensor_bytes([torch.empty(5, device="meta")]) == 0


def test_inference_peak_of_a_linear_layer():
    model = torch.nn.Linear(1000, 500).eval()
    x = torch.randn(2, 1000)
    weights, io = (1000 * 500 + 500) * 4, (2 * 1000 + 2 * 500) * 4  # parameters; input and output
    assert weights + io <= bench.inference_peak(model, x) <= weights + io + 4096


def test_training_peak_of_a_linear_layer(monkeypatch):
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3 * 4 * 16 * 16, 400)

        def forward(self, x):
            return self.proj(x.flatten(1))

    monkeypatch.setattr(bench_specs, "build_module", lambda spec: Flat())
    spec = bench.ModelSpec("r3d_18", (1, 3, 4, 16, 16))
    peak = bench.training_peak(spec, CPU, torch.float32)
    weights, x = (3072 * 400 + 400) * 4, 3072 * 4
    # weights, gradients and AdamW's two moments at least; at most two weight-sized temporaries more
    assert 4 * weights + x <= peak <= 6 * weights + x + 4096
