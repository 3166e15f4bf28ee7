"""timm's generic model checks (as in timm's own tests/test_models.py) for the image models, and the
same checks written for the 5-D video models."""

import pytest
import timm
import torch
from timm.layers import set_scriptable
from timm.layers._fx import create_feature_extractor, get_graph_node_names

import vast

IMAGE_MODELS = ["ast_nano", "ast_tiny"]


def _input(model, size=None, batch=1):
    cfg = model.pretrained_cfg["input_size"]
    if size is not None:
        cfg = (*cfg[:-2], size, size)
    return torch.randn(batch, *cfg)


def test_ast_models_are_in_timms_registry_and_vast_models_are_not():
    names = timm.list_models("ast_*")
    assert set(vast.list_models("ast_*")) <= set(names)
    assert not timm.list_models("vast_*")


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_forward_default_and_other_size(name):
    model = timm.create_model(name, pretrained=False).eval()
    with torch.no_grad():
        for size in (None, 160):
            out = model(_input(model, size))
            assert out.shape == (1, 1000) and not torch.isnan(out).any()


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_backward(name):
    model = timm.create_model(name, pretrained=False, num_classes=42).train()
    out = model(_input(model, 128, batch=2))
    out.mean().backward()
    assert out.shape[-1] == 42
    assert all(p.grad is not None for p in model.parameters()), "some parameters got no gradient"


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_default_cfg_features_and_classifier_reset(name):
    model = timm.create_model(name, pretrained=False).eval()
    cfg = model.pretrained_cfg
    x = _input(model)
    with torch.no_grad():
        features = model.forward_features(x)  # unpooled, NHWC as model.output_fmt says
        assert model.output_fmt == "NHWC"
        assert features.shape[1:3] == cfg["pool_size"] and features.shape[-1] == model.num_features
        assert model.forward_head(features, pre_logits=True).shape == (1, model.head_hidden_size)
        torch.testing.assert_close(model.forward_head(features), model(x))
        model.reset_classifier(0)
        assert model(x).shape == (1, model.num_features)
        model.reset_classifier(0, "")
        unpooled = model(x)
        assert unpooled.dim() == 4 and unpooled.shape[1:3] == cfg["pool_size"]
    state = model.state_dict()
    timm_model = timm.create_model(name)
    assert cfg["classifier"] + ".weight" in timm_model.state_dict()
    assert cfg["first_conv"] + ".weight" in state


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_torchscript(name):
    with set_scriptable(True):
        model = timm.create_model(name, pretrained=False).eval()
    scripted = torch.jit.script(model)
    x = _input(model, 128)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_features_only_with_out_indices(name):
    model = timm.create_model(name, pretrained=False, features_only=True, out_indices=(0, 2, 3)).eval()
    base = timm.create_model(name)
    expected = [base.feature_info[i]["num_chs"] for i in (0, 2, 3)]
    assert model.feature_info.channels() == expected
    outputs = model(torch.randn(1, 3, 96, 96))
    assert [o.shape[1] for o in outputs] == expected
    assert [tuple(o.shape[2:]) for o in outputs] == [(24, 24), (6, 6), (3, 3)]


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_forward_intermediates_match_features_only(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        final, intermediates = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
        features = timm.create_model(name, features_only=True)
        features.model.load_state_dict(model.state_dict(), strict=False)
        for a, b in zip(features.eval()(x), intermediates):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", [*IMAGE_MODELS, "vast_nano"])
def test_fx_feature_extraction(name):
    model = vast.create_model(name).eval()
    x = torch.randn(1, 3, 4, 64, 64) if name.startswith("vast") else torch.randn(1, 3, 64, 64)
    _train_nodes, eval_nodes = get_graph_node_names(model)
    extractor = create_feature_extractor(model, [eval_nodes[-1]])
    with torch.no_grad():
        out = model(x)
        fx_out = next(iter(extractor(x).values()))
    torch.testing.assert_close(fx_out, out)
    stage_nodes = [n for n in eval_nodes if n.startswith("stages.1")]
    assert stage_nodes


@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_fx_features_only(name):
    model = timm.create_model(name, features_only=True, feature_cls="fx", out_indices=(1, 3)).eval()
    outputs = model(torch.randn(1, 3, 64, 64))
    assert len(outputs) == 2


# ---- the same checks for the video models -----------------------------------------------------------


def test_vast_default_cfg_and_reset():
    model = vast.create_model("vast_nano").eval()
    cfg = model.pretrained_cfg
    assert cfg["input_size"] == (3, 8, 224, 224) and cfg["num_frames"] == 8
    assert cfg["num_classes"] == 400 and len(cfg["mean"]) == 3 and len(cfg["std"]) == 3
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (1, 4, 2, 2, model.num_features)
        torch.testing.assert_close(model.forward_head(features), model(x))
    assert cfg["classifier"] + ".weight" in model.state_dict()
    assert cfg["first_conv"] + ".weight" in model.state_dict()


def test_vast_torchscript():
    model = vast.create_model("vast_nano").eval()
    scripted = torch.jit.script(model)
    x = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), atol=1e-5, rtol=1e-5)


def test_vast_backward_batch_two():
    model = vast.create_model("vast_nano", num_classes=42).train()
    out = model(torch.randn(2, 3, 4, 64, 64))
    out.mean().backward()
    assert out.shape == (2, 42)
    assert all(p.grad is not None for p in model.parameters())
