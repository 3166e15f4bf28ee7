"""timm's generic model checks (timm's tests/test_models.py) held exactly as timm states them for the
image models, and the same checks written for the 5-D video model.

In particular FX: timm requires ``torch.all(fx_out == out)``, the traced graph bit for bit equal to the
eager model in inference, and a traced graph that TorchScript can compile.
"""

import math

import pytest
import timm
import torch
from timm.layers import get_notrace_functions, get_notrace_modules, set_scriptable
from timm.layers.format import get_channel_dim, get_spatial_dim
from torchvision.models.feature_extraction import NodePathTracer, create_feature_extractor, get_graph_node_names

import vast

IMAGE_MODELS = ["ast_nano", "ast_tiny"]
MODELS = [*IMAGE_MODELS, "vast_nano"]


def _input_size(model, target=None):
    """timm's ``_get_input_size``: the default size, each side capped at ``target``."""
    size = model.pretrained_cfg["input_size"]
    if target and max(size) > target:
        size = tuple(min(s, target) for s in size)
    if len(size) == 4:  # video (C, T, H, W): the test clip has 4 frames
        size = (size[0], 4, *size[2:])
    return size


def _create(name, **kwargs):
    return timm.create_model(name, **kwargs) if name.startswith("ast") else vast.create_model(name, **kwargs)


def _fx_model(model, train=False):
    """timm's ``_create_fx_model``: the model traced to its last node (in train mode, its outputs)."""
    tracer_kwargs = dict(
        leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(), param_shapes_constant=True
    )
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    train_return, eval_return = [train_nodes[-1]], [eval_nodes[-1]]
    if train:
        graph_nodes = list(reversed(NodePathTracer(**tracer_kwargs).trace(model).nodes))
        outputs = [n.name for n in graph_nodes[0]._input_nodes]
        names = [n.name for n in graph_nodes]
        train_return = [train_nodes[-names.index(n)] for n in outputs]
    return create_feature_extractor(
        model, train_return_nodes=train_return, eval_return_nodes=eval_return, tracer_kwargs=tracer_kwargs
    )


def test_ast_models_are_in_timms_registry_and_vast_models_are_not():
    assert set(vast.list_models("ast_*")) <= set(timm.list_models("ast_*"))
    assert not timm.list_models("vast_*")


@pytest.mark.parametrize("name", MODELS)
def test_model_forward(name):
    model = _create(name).eval()
    out = model(torch.randn(1, *_input_size(model, 384)))
    assert out.shape[0] == 1 and not torch.isnan(out).any()


@pytest.mark.parametrize("name", MODELS)
def test_model_backward(name):
    model = _create(name, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    out = model(torch.randn(2, *_input_size(model, 128)))
    out.mean().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {n}"
    assert num_params == sum(p.grad.numel() for p in model.parameters())
    assert out.shape[-1] == 42 and not torch.isnan(out).any()


@pytest.mark.parametrize("name", MODELS)
def test_model_default_cfgs(name):
    model = _create(name).eval()
    cfg = model.default_cfg
    pool_size = cfg["pool_size"]
    spatial = get_spatial_dim(model.output_fmt)
    x = torch.randn(1, *_input_size(model))
    if name.startswith("vast"):  # (B, T, H, W, C): the spatial axes are one further on
        spatial = tuple(a + 1 for a in spatial)
    features = model.forward_features(x)
    assert features.shape[spatial[0]] == pool_size[0] and features.shape[spatial[1]] == pool_size[1]
    pre_logits = model.forward_head(features, pre_logits=True)
    assert pre_logits.shape[-1] == model.head_hidden_size
    model.reset_classifier(0)
    assert model.num_classes == 0
    out = model(x)
    assert out.shape == pre_logits.shape and out.shape[-1] == model.num_features
    model.reset_classifier(0, "")
    out = model(x)
    assert out.dim() == x.dim()
    assert out.shape[spatial[0]] == pool_size[0] and out.shape[spatial[1]] == pool_size[1]
    out = _create(name, num_classes=0, global_pool="").eval()(x)
    assert out.shape[spatial[0]] == pool_size[0] and out.shape[spatial[1]] == pool_size[1]
    state = _create(name).state_dict()
    assert cfg["classifier"] + ".weight" in state and cfg["first_conv"] + ".weight" in state


@pytest.mark.parametrize("name", MODELS)
def test_model_forward_torchscript(name):
    with set_scriptable(True):
        model = _create(name).eval()
    x = torch.randn(1, *_input_size(model, 128))
    scripted = torch.jit.script(model)
    out = scripted(x)
    assert out.shape[0] == 1 and not torch.isnan(out).any()
    with torch.no_grad():
        assert torch.equal(out, model(x))


def _check_feature_maps(outputs, channels, reductions, input_size, output_fmt):
    feat_axis, spatial_axis = get_channel_dim(output_fmt), get_spatial_dim(output_fmt)
    assert len(channels) == len(outputs)
    for c, r, o in zip(channels, reductions, outputs):
        assert c == o.shape[feat_axis]
        assert o.shape[spatial_axis[0]] <= math.ceil(input_size[-2] / r) + 1
        assert o.shape[spatial_axis[1]] <= math.ceil(input_size[-1] / r) + 1
        assert o.shape[0] == 1 and not torch.isnan(o).any()


@pytest.mark.parametrize("name", IMAGE_MODELS)
@pytest.mark.parametrize("feature_cls", [None, "getter"])
def test_model_forward_features(name, feature_cls):
    kwargs = {"feature_cls": feature_cls} if feature_cls else {}
    model = timm.create_model(name, features_only=True, **kwargs).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 3
    size = _input_size(model, 96)
    outputs = model(torch.randn(1, *size))
    _check_feature_maps(outputs, channels, reductions, size, getattr(model, "output_fmt", "NCHW"))


@pytest.mark.parametrize("name", MODELS)
def test_model_forward_intermediates(name):
    model = _create(name).eval()
    info = timm.models.FeatureInfo(model.feature_info, len(model.feature_info))
    size = _input_size(model, 96)
    x = torch.randn(1, *size)
    output, intermediates = model.forward_intermediates(x, output_fmt="NCHW")
    if name.startswith("vast"):  # (B, C, T, H, W): fold time into the batch to check each map
        intermediates = [t.transpose(1, 2).flatten(0, 1)[:1] for t in intermediates]
    _check_feature_maps(intermediates, info.channels(), info.reduction(), size, "NCHW")
    assert torch.allclose(output, model.forward_features(x))
    model.set_grad_checkpointing()
    checkpointed, _ = model.forward_intermediates(x, output_fmt="NCHW")
    assert torch.allclose(output, checkpointed, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_model_forward_fx(name):
    model = _create(name).eval()
    with torch.inference_mode():
        x = torch.randn(1, *_input_size(model, 128))
        out = model(x)
        fx_out = torch.cat(tuple(_fx_model(model)(x).values()))
    assert torch.all(fx_out == out)
    assert out.shape[0] == 1 and not torch.isnan(out).any()


@pytest.mark.parametrize("name", MODELS)
def test_model_backward_fx(name):
    model = _create(name, num_classes=42).train()
    num_params = sum(p.numel() for p in model.parameters())
    fx_model = _fx_model(model, train=True)
    out = torch.cat(tuple(fx_model(torch.randn(2, *_input_size(model, 128))).values()))
    out.mean().backward()
    for n, p in fx_model.named_parameters():
        assert p.grad is not None, f"no gradient for {n}"
    assert num_params == sum(p.grad.numel() for p in fx_model.parameters())
    assert out.shape[-1] == 42 and not torch.isnan(out).any()


@pytest.mark.parametrize("name", MODELS)
def test_model_forward_fx_torchscript(name):
    with set_scriptable(True):
        model = _create(name).eval()
    scripted = torch.jit.script(_fx_model(model))
    x = torch.randn(1, *_input_size(model, 128))
    with torch.no_grad():
        out = torch.cat(tuple(scripted(x).values()))
        assert torch.equal(out, model(x))
    assert out.shape[0] == 1 and not torch.isnan(out).any()


@pytest.mark.parametrize("options", [{}, {"temporal_offsets": [1, 2], "temporal_context": True, "causal": True}])
def test_symbolic_trace_of_vast_is_bit_identical_and_still_checks_its_input(options, randomize):
    model = randomize(vast.create_model("vast_nano", **options)).eval()
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, 3, 4, 64, 64)
    with torch.inference_mode():
        assert torch.equal(traced(x), model(x))
    with pytest.raises(vast.errors.InputShapeError, match="expects input"):
        traced(torch.randn(2, 3, 64, 64))


def test_vast_default_cfg():
    cfg = vast.create_model("vast_nano").pretrained_cfg
    assert cfg["input_size"] == (3, 8, 224, 224) and cfg["num_frames"] == 8
    assert cfg["num_classes"] == 400 and len(cfg["mean"]) == 3 and len(cfg["std"]) == 3
