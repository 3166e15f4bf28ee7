"""fuse_for_inference: the fused model computes what the reference model does, checked against the
reference and against a block written out by hand; timm's reparameterize_model does the same rebuild."""

import copy

import pytest
import torch
import torch.nn.functional as F

import vast
from vast.deploy import FusedAffineShiftBlock, FusedPatchMerging, PackedLinear, fuse_for_inference
from vast.models.affine_shift import AffineShiftBlock, ChannelsLastBatchNorm, MixerConfig
from vast.ops import shift_tokens_reference

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


REACH = [
    dict(temporal_offsets=[1, 2]),
    dict(temporal_context=True),
    dict(temporal_offsets=[1, 2, 4], temporal_context=True, norm="layernorm"),
    dict(temporal_offsets=2, temporal_context=True, norm="groupnorm"),
    dict(temporal_offsets=[1, 2], temporal_context=True, causal=True),
    dict(temporal_context=True, causal=True, affine="static", t_patch=2),
]


@pytest.mark.parametrize("options", REACH)
def test_fused_model_with_temporal_reach_equals_unfused(options, randomize):
    model = randomize(vast.create_model("vast_nano", num_classes=10, **options)).eval()
    fused = copy.deepcopy(model).fuse_for_inference()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)


def test_fused_block_against_hand_written_block(randomize):
    block = randomize(AffineShiftBlock(24, MixerConfig(affine="dynamic"), norm_layer=ChannelsLastBatchNorm)).eval()
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
    """No graph breaks: a break per layer would undo inductor's fusion."""
    fused = randomize(vast.create_model("vast_nano", num_classes=10)).eval().fuse_for_inference()
    x = torch.randn(1, 3, 4, 32, 32)
    torch._dynamo.reset()
    with torch.inference_mode():
        fused(x)
        explanation = torch._dynamo.explain(fused)(x)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


@pytest.mark.parametrize("name", ["ast_nano", "vast_nano"])
def test_timm_reparameterize_model_fuses_as_fuse_for_inference(name, randomize):
    from timm.utils import reparameterize_model

    model = randomize(vast.create_model(name, num_classes=10)).eval()
    x = torch.randn(1, 3, 64, 64) if name.startswith("ast") else torch.randn(1, 3, 4, 32, 32)
    timm_fused = reparameterize_model(model)  # a fused copy; the model itself is left as it was
    assert not any(isinstance(m, FusedAffineShiftBlock) for m in model.modules())
    blocks = [m for m in timm_fused.modules() if isinstance(m, FusedAffineShiftBlock)]
    assert len(blocks) == sum(model.stages[i].blocks.__len__() for i in range(len(model.stages)))
    assert sum(isinstance(m, FusedPatchMerging) for m in timm_fused.modules()) == len(model.stages) - 1
    ours = fuse_for_inference(copy.deepcopy(model))
    with torch.inference_mode():
        torch.testing.assert_close(timm_fused(x), ours(x), rtol=0, atol=0)
        torch.testing.assert_close(ours(x), model(x), rtol=1e-4, atol=1e-5)


def test_fused_model_on_blas_and_the_reference_model_untouched(randomize):
    model = randomize(vast.create_model("vast_nano", num_classes=10)).eval()
    assert not any(isinstance(m, PackedLinear) for m in model.modules())
    blas = fuse_for_inference(copy.deepcopy(model), onednn=False)
    layers = [m for m in blas.modules() if isinstance(m, PackedLinear)]
    assert layers and not any(layer.onednn for layer in layers)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(blas(x), model(x), rtol=1e-4, atol=1e-5)
