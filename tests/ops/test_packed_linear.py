"""PackedLinear (oneDNN on the CPU, for fused models) against F.linear and hand-written matmuls, with
the GELU and the residual addition, its per-layer packed weight, and its portable fallbacks."""

import copy

import pytest
import torch
import torch.nn.functional as F

from vast.ops.packed_linear import PackedLinear, onednn_linear_available, packed_bytes

torch.manual_seed(0)
needs_onednn = pytest.mark.skipif(not onednn_linear_available(), reason="no oneDNN in this PyTorch build")


@pytest.mark.parametrize("activation", ["none", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_f_linear(activation, bias):
    weight, b = torch.randn(48, 24), torch.randn(48) if bias else None
    layer = PackedLinear(weight, b, activation)
    x = torch.randn(2, 3, 4, 5, 24)
    expected = F.linear(x, weight, b)
    expected = F.gelu(expected) if activation == "gelu" else expected
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_residual_is_added(activation):
    weight, bias = torch.randn(24, 24), torch.randn(24)
    x, residual = torch.randn(2, 7, 24), torch.randn(2, 7, 24)
    expected = x @ weight.T + bias
    expected = (F.gelu(expected) if activation == "gelu" else expected) + residual
    with torch.inference_mode():
        out = PackedLinear(weight, bias, activation)(x, residual)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.fixture
def onednn_calls(monkeypatch):
    """Counts the matmuls that reach oneDNN."""
    calls = []
    monkeypatch.setattr(PackedLinear, "_onednn", lambda self, *a: calls.append(1) or _onednn(self, *a))
    return calls


_onednn = PackedLinear._onednn


@needs_onednn
def test_uses_onednn_on_cpu_and_falls_back_elsewhere(onednn_calls):
    layer = PackedLinear(torch.randn(16, 8), torch.randn(16))
    x = torch.randn(4, 8)
    with torch.inference_mode():
        layer(x)
    assert onednn_calls == [1]
    onednn_calls.clear()
    layer(x.clone().requires_grad_(True))  # autograd: F.linear
    layer.double()(x.double())  # no oneDNN fp64: F.linear
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast chooses the dtype itself
        layer.float()(x)
    torch.jit.trace(layer, (x,), check_trace=False)  # a tracer records portable ops
    assert onednn_calls == []
    PackedLinear(torch.randn(16, 8), None, onednn=False)(x)
    assert onednn_calls == []


@needs_onednn
def test_weight_changes_are_packed_again():
    layer = PackedLinear(torch.randn(8, 8), torch.randn(8))
    x = torch.randn(5, 8)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias, rtol=1e-5, atol=1e-5)
        first = layer.packed
        layer(x)
        assert layer.packed is first  # packed once while the weight is unchanged
        layer.load_state_dict({"weight": torch.eye(8), "bias": layer.bias})  # writes in place
        torch.testing.assert_close(layer(x), x + layer.bias, rtol=1e-5, atol=1e-5)
        layer.weight = 2 * torch.eye(8)  # a new tensor
        torch.testing.assert_close(layer(x), 2 * x + layer.bias, rtol=1e-5, atol=1e-5)
        bf16 = layer.to(torch.bfloat16)  # a new dtype
        torch.testing.assert_close(bf16(x.bfloat16()).float(), 2 * x + layer.bias.float(), rtol=0.02, atol=0.05)


@needs_onednn
def test_packed_bytes_counts_each_layers_copy():
    model = torch.nn.Sequential(PackedLinear(torch.randn(40, 24), torch.randn(40)), torch.nn.ReLU())
    assert packed_bytes(model) == 0
    with torch.no_grad():
        model(torch.randn(3, 24))
    assert packed_bytes(model) == 40 * 24 * 4  # the weight's copy; the bias is not packed


def test_compiled_layer_matches_eager():
    layer = PackedLinear(torch.randn(16, 16), torch.randn(16), activation="gelu")
    x, residual = torch.randn(4, 16), torch.randn(4, 16)
    torch._dynamo.reset()
    with torch.no_grad():
        expected = F.gelu(x @ layer.weight.T + layer.bias) + residual
        compiled = torch.compile(layer, fullgraph=True)
        torch.testing.assert_close(compiled(x, residual), expected, rtol=1e-5, atol=1e-5)


def test_copy_state_script_and_bad_activation():
    layer = PackedLinear(torch.randn(8, 4), torch.randn(8))
    with torch.inference_mode():
        layer(torch.randn(3, 4))  # packs a oneDNN weight, which deepcopy and the state dict leave out
    clone = copy.deepcopy(layer)
    assert set(clone.state_dict()) == {"weight", "bias"}
    scripted = torch.jit.script(layer)
    with torch.no_grad():
        torch.testing.assert_close(clone(torch.ones(1, 4)), torch.ones(1, 4) @ layer.weight.T + layer.bias)
        torch.testing.assert_close(scripted(torch.ones(1, 4)), layer(torch.ones(1, 4)))
    with pytest.raises(ValueError, match="activation"):
        PackedLinear(torch.randn(8, 4), None, activation="relu6")
