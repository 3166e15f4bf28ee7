import pytest
import torch

from vast.models.affine_shift import ChannelsLastBatchNorm, DynamicAffine, StaticAffine


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised affines and fresh BatchNorm statistics non-trivial values, so that a test
    exercises every term of the forward pass."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, DynamicAffine):
                module.proj.weight.copy_(torch.randn(module.proj.weight.shape, generator=gen) * 0.05)
                module.proj.bias.copy_(torch.randn(module.proj.bias.shape, generator=gen) * 0.05)
            elif isinstance(module, StaticAffine):
                module.scale.copy_(torch.randn(module.scale.shape, generator=gen) * 0.1)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, ChannelsLastBatchNorm):
                module.bn.running_mean.copy_(torch.randn(module.bn.running_mean.shape, generator=gen) * 0.1)
                module.bn.running_var.copy_(torch.rand(module.bn.running_var.shape, generator=gen) + 0.5)
    return model


@pytest.fixture(scope="session")
def randomize():
    return randomize_
