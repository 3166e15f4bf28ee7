"""PackedLinear (oneDNN on the CPU) against F.linear, with GELU and residual post-ops."""

import copy

import pytest
import torch
import torch.nn.functional as F

from vast.ops.linear import MIN_FEATURES_FOR_GELU_POST_OP, PackedLinear, onednn_linear_available

torch.manual_seed(0)


@pytest.mark.parametrize("activation", ["none", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("in_features", [24, MIN_FEATURES_FOR_GELU_POST_OP])  # GELU apart / as a post-op
def test_matches_f_linear(activation, bias, in_features):
    weight, b = torch.randn(48, in_features), torch.randn(48) if bias else None
    layer = PackedLinear(weight, b, activation)
    x = torch.randn(2, 3, 4, 5, in_features)
    expected = F.linear(x, weight, b)
    expected = F.gelu(expected) if activation == "gelu" else expected
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_residual_is_added_inside():
    weight, bias = torch.randn(24, 24), torch.randn(24)
    x, residual = torch.randn(2, 7, 24), torch.randn(2, 7, 24)
    with torch.inference_mode():
        out = PackedLinear(weight, bias)(x, residual)
    torch.testing.assert_close(out, x @ weight.T + bias + residual, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not onednn_linear_available(), reason="no oneDNN in this PyTorch build")
def test_uses_onednn_on_cpu_and_falls_back_elsewhere(monkeypatch):
    layer = PackedLinear(torch.randn(16, 8), torch.randn(16))
    x = torch.randn(4, 8)
    calls = []
    original = layer._forward_onednn
    monkeypatch.setattr(layer, "_forward_onednn", lambda *a: calls.append(1) or original(*a))
    with torch.inference_mode():
        layer(x)
    assert calls == [1]
    layer(x.requires_grad_(True))  # autograd: plain F.linear
    layer.double()(x.double())  # no oneDNN fp64: plain F.linear
    assert calls == [1]


def test_bfloat16_close_to_float32():
    weight, bias = torch.randn(32, 16), torch.randn(32)
    x = torch.randn(10, 16)
    with torch.inference_mode():
        out = PackedLinear(weight, bias).to(torch.bfloat16)(x.bfloat16())
    torch.testing.assert_close(out.float(), x @ weight.T + bias, rtol=0.05, atol=0.1)


def test_copy_state_and_bad_activation():
    layer = PackedLinear(torch.randn(8, 4), torch.randn(8))
    with torch.inference_mode():
        layer(torch.randn(3, 4))  # packs a oneDNN weight, which deepcopy must not touch
    clone = copy.deepcopy(layer)
    assert set(clone.state_dict()) == {"weight", "bias"}
    torch.testing.assert_close(clone(torch.ones(1, 4)), layer(torch.ones(1, 4)))
    with pytest.raises(ValueError, match="unknown activation"):
        PackedLinear(torch.randn(8, 4), None, activation="relu6")
