"""Every layer of the reference model runs its own forward in every mode: forward hooks fire, and a
parametrization on a projection changes the output, with the memory option on and off."""

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import vast
from vast.models.affine_shift import ChannelsLastBatchNorm, ChannelsLastGroupNorm

LAYERS = (nn.Linear, nn.Conv3d, nn.Conv2d, nn.BatchNorm1d, nn.LayerNorm, ChannelsLastBatchNorm, ChannelsLastGroupNorm)


def _hooked(model):
    fired = {}
    for name, module in model.named_modules():
        if isinstance(module, LAYERS):
            fired[name] = 0
            module.register_forward_hook(lambda m, a, o, name=name: fired.__setitem__(name, fired[name] + 1))
    return fired


@pytest.mark.parametrize("memory_lean", [False, True])
@pytest.mark.parametrize("norm", ["batchnorm", "groupnorm"])
def test_forward_hooks_fire_on_every_layer_in_every_mode(memory_lean, norm):
    model = vast.create_model("vast_nano", num_classes=4, norm=norm)
    model.set_memory_lean(memory_lean)
    fired = _hooked(model)
    assert len(fired) > 40
    x = torch.randn(2, 3, 4, 32, 32)
    modes = {
        "training": lambda: model.train()(x).sum().backward(),
        "no_grad eval": lambda: torch.no_grad()(model.eval())(x),
        "inference_mode": lambda: torch.inference_mode()(model.eval())(x),
    }
    for mode, run in modes.items():
        fired.update(dict.fromkeys(fired, 0))
        run()
        silent = [name for name, count in fired.items() if count != 1]
        assert not silent, f"{mode}: hooks that did not fire exactly once: {silent}"


def test_a_parametrization_on_a_projection_is_used_in_training_and_inference():
    class Zero(nn.Module):
        def forward(self, weight):
            return weight * 0.0

    torch.manual_seed(0)
    model = vast.create_model("vast_nano", num_classes=4, drop_path_rate=0.0)
    model.set_memory_lean(True)
    fc2 = model.stages[3].blocks[0].mlp.fc2
    x = torch.randn(2, 3, 4, 32, 32)
    before = model.eval()(x)
    parametrize.register_parametrization(fc2, "weight", Zero())
    nn.init.zeros_(fc2.bias)
    # With fc2 zeroed the last MLP branch adds nothing: the same as removing it by hand.
    block = model.stages[3].blocks[0]
    block_input = {}
    block.register_forward_pre_hook(lambda m, a: block_input.setdefault("x", a[0]))
    after = model(x)
    assert not torch.allclose(before, after)
    y = block_input["x"] + block.drop_path1(block.mixer(block.norm1(block_input["x"])))
    expected = model.forward_head(model.norm(y))
    torch.testing.assert_close(after, expected)
    model.train()(x).sum().backward()
    assert fc2.parametrizations.weight.original.grad is not None
