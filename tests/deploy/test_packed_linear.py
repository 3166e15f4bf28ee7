"""Linear and PackedLinear (oneDNN on the CPU) against F.linear and hand-written matmuls, with GELU and
residual post-ops, the packed-weight cache and torch.compile."""

import copy
import gc

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vast.ops.linear as linear_ops
from vast.ops.linear import MIN_FEATURES_FOR_GELU_POST_OP, Linear, PackedLinear, onednn_linear_available

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


needs_onednn = pytest.mark.skipif(not onednn_linear_available(), reason="no oneDNN in this PyTorch build")


@pytest.fixture
def onednn_calls(monkeypatch):
    """Counts the calls that reach oneDNN."""
    calls = []
    original = linear_ops._onednn_linear
    monkeypatch.setattr(linear_ops, "_onednn_linear", lambda *a: calls.append(1) or original(*a))
    return calls


@needs_onednn
def test_uses_onednn_on_cpu_and_falls_back_elsewhere(onednn_calls):
    layer = PackedLinear(torch.randn(16, 8), torch.randn(16))
    x = torch.randn(4, 8)
    with torch.inference_mode():
        layer(x)
    assert onednn_calls == [1]
    layer(x.requires_grad_(True))  # autograd: plain F.linear
    layer.double()(x.double())  # no oneDNN fp64: plain F.linear
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast chooses the dtype itself
        assert layer.float()(x).dtype == torch.bfloat16
    assert onednn_calls == [1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_is_nn_linear_with_the_same_inference_result(dtype, bias, onednn_calls):
    layer = Linear(40, 24, bias=bias).to(dtype)
    assert isinstance(layer, nn.Linear) and set(layer.state_dict()) == ({"weight", "bias"} if bias else {"weight"})
    x = torch.randn(3, 5, 40, dtype=dtype)
    expected = (x.double() @ layer.weight.double().T + (layer.bias.double() if bias else 0)).to(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=0.02, atol=0.05)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, **tol)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected, **tol)
    assert len(onednn_calls) == (2 if onednn_linear_available() else 0)


def test_linear_trains_through_autograd(onednn_calls):
    layer = Linear(8, 4)
    x = torch.randn(6, 8, requires_grad=True)
    layer(x).square().sum().backward()
    expected_w = torch.autograd.grad((x @ layer.weight.T + layer.bias).square().sum(), layer.weight)[0]
    torch.testing.assert_close(layer.weight.grad, expected_w)
    assert x.grad is not None and onednn_calls == []


@needs_onednn
def test_a_weight_changed_in_place_is_packed_again():
    layer = Linear(8, 8).eval()
    x = torch.randn(5, 8)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(3):  # an optimiser step between inference passes must be seen by the next pass
        with torch.no_grad():
            torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias, rtol=1e-5, atol=1e-5)
        layer(x).sum().backward()
        optimizer.step()
    with torch.no_grad():
        layer.weight.copy_(torch.eye(8))  # load_state_dict writes this way
        torch.testing.assert_close(layer(x), x + layer.bias, rtol=1e-5, atol=1e-5)
        layer.weight = nn.Parameter(2 * torch.eye(8))  # a new tensor: packed anew, the old entry dropped
        torch.testing.assert_close(layer(x), 2 * x + layer.bias, rtol=1e-5, atol=1e-5)
        layer.weight.data = 3 * torch.eye(8)  # new data, same version counter
        torch.testing.assert_close(layer(x), 3 * x + layer.bias, rtol=1e-5, atol=1e-5)
        layer.weight.data.mul_(2)  # not seen through .data alone ...
        layer.eval()  # ... but eval() drops the copy
        torch.testing.assert_close(layer(x), 6 * x + layer.bias, rtol=1e-5, atol=1e-5)


@needs_onednn
def test_packed_copies_are_freed_with_their_weight_and_on_train():
    layer = Linear(8, 8).eval()
    with torch.no_grad():
        layer(torch.randn(2, 8))
    assert id(layer.weight) in linear_ops._PACKED
    layer.train()
    assert id(layer.weight) not in linear_ops._PACKED
    with torch.no_grad():
        layer(torch.randn(2, 8))
    key = id(layer.weight)
    del layer
    gc.collect()
    assert key not in linear_ops._PACKED


@needs_onednn
def test_compiled_layers_keep_onednn_and_match_eager():
    model = nn.Sequential(Linear(16, 32), nn.ReLU(), Linear(32, 16)).eval()
    packed = PackedLinear(torch.randn(16, 16), torch.randn(16), activation="gelu")
    x = torch.randn(4, 16)
    with torch.no_grad():
        expected = packed(model(x))
        graph_ops = []

        def backend(gm, example_inputs):
            graph_ops.extend(str(node.target) for node in gm.graph.nodes)
            return gm.forward

        compiled = torch.compile(lambda t: packed(model(t)), backend=backend, fullgraph=True)
        torch.testing.assert_close(compiled(x), expected)
        torch.testing.assert_close(torch.compile(lambda t: packed(model(t)))(x), expected, rtol=1e-5, atol=1e-5)
    assert sum("onednn_linear" in op for op in graph_ops) == 3, graph_ops


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


def test_onednn_path_can_be_switched_off(onednn_calls):
    layer = Linear(8, 4).eval()
    x = torch.randn(3, 8)
    try:
        linear_ops.set_onednn_linear(False)
        assert not linear_ops.onednn_linear_enabled()
        with torch.no_grad():
            torch.testing.assert_close(layer(x), F.linear(x, layer.weight, layer.bias))
        assert onednn_calls == []
    finally:
        linear_ops.set_onednn_linear(True)
    assert linear_ops.onednn_linear_enabled() == onednn_linear_available()


@needs_onednn
def test_packed_bytes_counts_the_packed_copies():
    layer = Linear(40, 24).eval()
    assert linear_ops.packed_bytes(layer.parameters()) == 0
    with torch.no_grad():
        layer(torch.randn(2, 40))
    assert linear_ops.packed_bytes(layer.parameters()) == 40 * 24 * 4  # the weight's copy; the bias is not packed
    layer.train()
    assert linear_ops.packed_bytes(layer.parameters()) == 0
