"""The bench's one contact with VAST's oneDNN linear path (vast.ops.linear): packed bytes and --blas."""

import pytest
import torch

from vast.bench.memory import inference_peak
from vast.bench.onednn import linear_backend, packed_weight_bytes

linear_ops = pytest.importorskip("vast.ops.linear")
needs_onednn = pytest.mark.skipif(not linear_ops.onednn_linear_available(), reason="no oneDNN in this PyTorch")


@needs_onednn
def test_inference_peak_counts_the_packed_weights():
    model = torch.nn.Sequential(linear_ops.Linear(256, 256, bias=False)).eval()
    x = torch.randn(1, 256)
    assert packed_weight_bytes(model) == 0  # nothing packed before a pass
    with torch.inference_mode():
        model(x)  # the warm-up pass packs the weight
    weight = packed = 256 * 256 * 4
    assert packed_weight_bytes(model) == packed
    assert weight + packed <= inference_peak(model, x) <= weight + packed + 2 * 256 * 4 + 4096


def test_blas_switches_the_path_off_for_the_block_only(monkeypatch):
    calls = []
    original = linear_ops.set_onednn_linear
    monkeypatch.setattr(linear_ops, "set_onednn_linear", lambda enable=True: calls.append(enable) or original(enable))
    before = linear_ops.onednn_linear_enabled()
    with linear_backend(onednn=True):
        pass
    assert calls == []  # asked for nothing: nothing touched
    with linear_backend(onednn=False):
        assert not linear_ops.onednn_linear_enabled()
    assert calls == [False, before] and linear_ops.onednn_linear_enabled() == before
