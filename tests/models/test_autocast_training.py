"""Training steps under mixed precision (the demo trains with bf16 autocast on capable CPUs)."""

import pytest
import torch

import vast


@pytest.mark.parametrize("norm", ["batchnorm", "layernorm"])
def test_bf16_autocast_training_step_matches_fp32_closely(norm):
    torch.manual_seed(0)
    model = vast.create_model("vast_nano", num_classes=8, norm=norm).train()
    x, y = torch.randn(4, 3, 4, 32, 32), torch.randint(0, 8, (4,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits.float(), y)
    loss.backward()
    grads_bf16 = torch.cat([p.grad.flatten().float() for p in model.parameters()])
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    grads_fp32 = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.isfinite(grads_bf16).all()
    cosine = torch.nn.functional.cosine_similarity(grads_bf16, grads_fp32, dim=0)
    assert cosine > 0.98
