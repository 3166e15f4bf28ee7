"""Memory-lean training (``set_memory_lean``): the same training step as plain autograd, in exactly the
memory that recomputing the norm and GELU outputs should save."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

import vast
from vast.ops.recompute import recipe_for


def _step(model, x, target):
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def _lean_and_plain(randomize, **options):
    torch.manual_seed(0)
    plain = randomize(vast.create_model("vast_nano", num_classes=5, drop_path_rate=0.0, **options)).train()
    lean = copy.deepcopy(plain)
    lean.set_memory_lean(True)
    return lean, plain


@pytest.mark.parametrize(
    "options",
    [
        dict(affine="dynamic"),
        dict(affine="static"),
        dict(affine="none"),
        dict(norm="layernorm"),
        dict(norm="groupnorm"),
        dict(temporal_offsets=[1, 2], temporal_context=True),
        dict(temporal_offsets=2, temporal_context=True, causal=True),
        dict(proj_drop_rate=0.1),  # dropout between fc1 and fc2: the GELU output is not what fc2 saves
    ],
)
def test_lean_training_step_is_the_plain_step_exactly(options, randomize):
    lean, plain = _lean_and_plain(randomize, **options)
    x, target = torch.randn(2, 3, 4, 32, 32), torch.tensor([1, 3])
    torch.manual_seed(1)
    loss_lean, grads_lean = _step(lean, x, target)
    torch.manual_seed(1)
    loss_plain, grads_plain = _step(plain, x, target)
    # The recomputation is the same kernel on the same input: equal to the last bit.
    torch.testing.assert_close(loss_lean, loss_plain, rtol=0, atol=0)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_lean[name], grad, rtol=0, atol=0, msg=name)
    for (name, a), (_, b) in zip(lean.named_buffers(), plain.named_buffers()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)  # running statistics updated once


def _live_bytes_after_forward(model, x):
    """Bytes the CPU allocator still holds after a training forward pass (what autograd saved, and the
    output), from the profiler's record of every allocation and free."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = model(x)
    events = prof.profiler.kineto_results.events()
    live = sum(e.nbytes() for e in events if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)
    del out
    return live


def test_lean_forward_keeps_exactly_the_bytes_it_should_save():
    """vast_nano on 1 x 3 x 4 x 64 x 64 (float32). Per block the normalised tokens twice (C each) and the
    GELU output (4C) are no longer stored; per patch merging its normalised 4C input. Tokens per stage:
    4 x 16 x 16, 4 x 8 x 8, 4 x 4 x 4, 4 x 2 x 2 at widths 32, 64, 128, 256, depths 1, 1, 3, 1."""
    blocks = 6 * 4 * (32 * 1024 + 64 * 256 + 3 * 128 * 64 + 256 * 16)
    mergings = 4 * 4 * (32 * 256 + 64 * 64 + 128 * 16)
    torch.manual_seed(0)
    model = vast.create_model("vast_nano", num_classes=5).train()
    x = torch.randn(1, 3, 4, 64, 64)
    model(x)  # the first pass allocates what later passes reuse
    plain = _live_bytes_after_forward(model, x)
    model.set_memory_lean(True)
    lean = _live_bytes_after_forward(model, x)
    assert plain - lean == blocks + mergings == 2 * 2**20
    model.set_memory_lean(False)  # the hooks come off again
    assert _live_bytes_after_forward(model, x) == plain


def test_bf16_autocast_training_still_matches_plain(randomize):
    lean, plain = _lean_and_plain(randomize)
    x, target = torch.randn(2, 3, 4, 32, 32), torch.tensor([0, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss_lean, grads_lean = _step(lean, x, target)
        loss_plain, grads_plain = _step(plain, x, target)
    torch.testing.assert_close(loss_lean, loss_plain, rtol=0, atol=0)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_lean[name], grad, rtol=0, atol=0, msg=name)


def test_an_output_changed_in_place_is_stored_not_recomputed(randomize):
    lean, plain = _lean_and_plain(randomize)
    for model in (lean, plain):  # a user hook that scales the first norm's output in place
        model.stages[0].blocks[0].norm1.bn.register_forward_hook(lambda m, a, out: out.mul_(2.0))
    x, target = torch.randn(2, 3, 4, 32, 32), torch.tensor([2, 3])
    _, grads_lean = _step(lean, x, target)
    _, grads_plain = _step(plain, x, target)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_lean[name], grad, rtol=0, atol=0, msg=name)


def test_with_grad_checkpointing_and_no_grad(randomize):
    lean, plain = _lean_and_plain(randomize)
    lean.set_grad_checkpointing(True)
    x, target = torch.randn(2, 3, 4, 32, 32), torch.tensor([1, 2])
    _, grads_lean = _step(lean, x, target)
    _, grads_plain = _step(plain, x, target)
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_lean[name], grad, rtol=0, atol=0, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(lean.eval()(x), plain.eval()(x), rtol=0, atol=0)


def test_what_is_recomputed():
    x = torch.randn(3, 8)
    assert recipe_for(nn.GELU(), x) is not None and recipe_for(nn.LayerNorm(8), x) is not None
    assert recipe_for(nn.BatchNorm1d(8), x) is not None
    # SyncBatchNorm's statistics come from every process: recomputing them alone would be wrong.
    assert recipe_for(nn.SyncBatchNorm(8), x) is None
    assert recipe_for(nn.Linear(8, 8), x) is None  # a matmul is never recomputed
    bn = nn.BatchNorm1d(8).eval()
    bn.running_mean.fill_(0.5)
    torch.testing.assert_close(recipe_for(bn, x)(), bn(x), rtol=0, atol=0)
    torch.testing.assert_close(recipe_for(bn.train(), x)(), F.batch_norm(x, None, None, bn.weight, bn.bias, True))
