"""fuse_for_inference: the fused model computes what the trained one does, checked against the unfused
model and against a block written out by hand."""

import copy

import pytest
import torch
import torch.nn.functional as F

import vast
from vast.models.affine_shift import AffineShiftBlock, FusedAffineShiftBlock
from vast.ops import shift_tokens_reference
from vast.ops.linear import Linear, onednn_linear_available

torch.manual_seed(0)


@pytest.mark.parametrize("norm", ["batchnorm", "layernorm", "groupnorm"])
@pytest.mark.parametrize("affine", ["dynamic", "static", "none"])
def test_fused_model_equals_unfused(norm, affine, randomize):
    model = randomize(vast.create_model("vast_nano", num_classes=10, norm=norm, affine=affine)).eval()
    fused = copy.deepcopy(model).fuse_for_inference()
    assert any(isinstance(m, FusedAffineShiftBlock) for m in fused.modules())
    assert not any(isinstance(m, AffineShiftBlock) for m in fused.modules())
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # no-grad mode (not inference mode) takes the same path
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)


def test_image_model_and_causal_model_fuse(randomize):
    image = randomize(vast.create_model("ast_nano", num_classes=10)).eval()
    causal = randomize(vast.create_model("vast_nano", num_classes=10, causal=True)).eval()
    for model, x in ((image, torch.randn(1, 3, 64, 64)), (causal, torch.randn(1, 3, 4, 32, 32))):
        fused = copy.deepcopy(model).fuse_for_inference()
        with torch.inference_mode():
            torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)


def test_fused_block_against_hand_written_block(randomize):
    block = randomize(AffineShiftBlock(24, norm="batchnorm", affine="dynamic")).eval()
    fused = FusedAffineShiftBlock(block).eval()
    x = torch.randn(2, 3, 4, 5, 24, dtype=torch.float32)

    def bn(t, module):
        bn = module.bn
        return (t - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias

    mixer, mlp = block.mixer, block.mlp
    u = bn(x, block.norm1)
    v = u @ mixer.value.weight.T + mixer.value.bias
    ga = u @ mixer.affine.proj.weight.T + mixer.affine.proj.bias
    z = shift_tokens_reference(v) * (1 + ga[..., :24]) + ga[..., 24:]
    y = x + z @ mixer.proj.weight.T + mixer.proj.bias
    h = F.gelu(bn(y, block.norm2) @ mlp.fc1.weight.T + mlp.fc1.bias)
    expected = y + h @ mlp.fc2.weight.T + mlp.fc2.bias
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-5)


def test_fusing_needs_eval_mode_and_forbids_training():
    model = vast.create_model("vast_nano")
    with pytest.raises(RuntimeError, match="eval"):
        model.fuse_for_inference()
    model.eval().fuse_for_inference()
    with pytest.raises(RuntimeError, match="cannot be trained"):
        model.train()


@pytest.mark.slow
@pytest.mark.parametrize("freezing", [False, True])
def test_fused_model_under_torch_compile(freezing, randomize):
    from torch._inductor import config

    model = randomize(vast.create_model("vast_nano", num_classes=10)).eval()
    fused = copy.deepcopy(model).fuse_for_inference()
    x = torch.randn(1, 3, 4, 32, 32)
    torch._dynamo.reset()
    with torch.inference_mode(), config.patch(freezing=freezing):
        fused(x)  # eager first: the oneDNN weights are packed, which must not disturb the compiled graph
        torch.testing.assert_close(torch.compile(fused)(x), model(x), rtol=1e-4, atol=1e-5)


def test_fused_model_compiles_to_one_graph(randomize):
    """The oneDNN calls stay out of traced graphs: a graph break per layer would undo inductor's fusion."""
    fused = randomize(vast.create_model("vast_nano", num_classes=10)).eval().fuse_for_inference()
    x = torch.randn(1, 3, 4, 32, 32)
    torch._dynamo.reset()
    with torch.inference_mode():
        fused(x)
        explanation = torch._dynamo.explain(fused)(x)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@pytest.mark.skipif(not onednn_linear_available(), reason="no oneDNN in this PyTorch build")
def test_plain_model_inference_on_onednn_matches_the_autograd_path(randomize, monkeypatch):
    """Without autograd every projection of the plain model runs on oneDNN; with it, F.linear (MKL)."""
    import vast.ops.linear as linear_ops

    model = randomize(vast.create_model("vast_nano", num_classes=10)).eval()
    projections = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert projections and all(isinstance(m, Linear) for m in projections)
    x = torch.randn(2, 3, 4, 32, 32)
    expected = model(x).detach()  # parameters require grad: the plain F.linear path
    calls = []
    original = linear_ops._onednn_linear
    monkeypatch.setattr(linear_ops, "_onednn_linear", lambda *a: calls.append(1) or original(*a))
    with torch.inference_mode():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
    assert len(calls) == len(projections)
