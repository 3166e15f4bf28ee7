"""Training with the memory-lean blocks (the default) is training without them, in less memory."""

import copy

import pytest
import torch
import torch.nn.functional as F

import vast


def _step(model, x, target):
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("affine", ["dynamic", "static", "none"])
def test_lean_and_plain_training_steps_agree(affine, randomize):
    torch.manual_seed(0)
    lean = randomize(vast.create_model("vast_nano", num_classes=5, affine=affine, drop_path_rate=0.0)).double()
    plain = copy.deepcopy(lean)
    plain.set_memory_lean(False)
    x, target = torch.randn(2, 3, 4, 32, 32, dtype=torch.float64), torch.tensor([1, 3])
    loss_lean, grads_lean = _step(lean.train(), x, target)
    loss_plain, grads_plain = _step(plain.train(), x, target)
    torch.testing.assert_close(loss_lean, loss_plain, rtol=1e-10, atol=1e-10)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_lean[name], grad, rtol=1e-8, atol=1e-10, msg=name)
    for (name, a), (_, b) in zip(lean.named_buffers(), plain.named_buffers()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


def test_lean_training_needs_less_memory():
    from vast.engine.benchmark import peak_memory

    torch.manual_seed(0)
    model = vast.create_model("vast_nano", num_classes=5)
    x, target = torch.randn(1, 3, 4, 128, 128), torch.tensor([1])

    def step():
        F.cross_entropy(model(x), target).backward()
        model.zero_grad(set_to_none=True)

    step()
    lean = peak_memory(step, x.device, 0)
    model.set_memory_lean(False)
    plain = peak_memory(step, x.device, 0)
    assert lean < 0.85 * plain
