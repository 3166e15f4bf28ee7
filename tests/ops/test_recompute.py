"""The memory-lean autograd functions give plain autograd's outputs, gradients and running statistics."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vast.ops.recompute import gelu_linear, layer_norm_linear, norm_linears

torch.manual_seed(0)
TOL = dict(rtol=1e-10, atol=1e-10)


def _grads(*tensors):
    return [t.grad.clone() for t in tensors]


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_norm_linears_matches_batchnorm_then_linears(training, momentum):
    norm = nn.BatchNorm1d(12, momentum=momentum).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2)
    linears = [nn.Linear(12, 12).double(), nn.Linear(12, 24).double()]
    norm.train(training)
    ref_norm, ref_linears = copy.deepcopy(norm), copy.deepcopy(linears)
    x = torch.randn(2, 3, 4, 12, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    outs = norm_linears(x, norm, linears)
    u = ref_norm(x_ref.reshape(-1, 12)).reshape(x.shape)
    refs = [lin(u) for lin in ref_linears]
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, **TOL)
    grads = [torch.randn_like(r) for r in refs]
    torch.autograd.backward(outs, grads)
    torch.autograd.backward(refs, grads)
    params = [x, norm.weight, norm.bias, *(p for lin in linears for p in lin.parameters())]
    ref_params = [x_ref, ref_norm.weight, ref_norm.bias, *(p for lin in ref_linears for p in lin.parameters())]
    for got, want in zip(_grads(*params), _grads(*ref_params)):
        torch.testing.assert_close(got, want, **TOL)
    torch.testing.assert_close(norm.running_mean, ref_norm.running_mean, **TOL)
    torch.testing.assert_close(norm.running_var, ref_norm.running_var, **TOL)
    assert int(norm.num_batches_tracked) == int(ref_norm.num_batches_tracked)


def test_layer_norm_linear_and_gelu_linear_match_plain_autograd():
    norm, linear, fc = nn.LayerNorm(16).double(), nn.Linear(16, 8, bias=False).double(), nn.Linear(16, 8).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = torch.randn(2, 3, 16, dtype=torch.float64, requires_grad=True)
    for lean, plain, modules in (
        (lambda t: layer_norm_linear(t, norm, linear), lambda t: linear(norm(t)), (norm, linear)),
        (lambda t: gelu_linear(t, fc), lambda t: fc(F.gelu(t)), (fc,)),
    ):
        params = [x, *(p for m in modules for p in m.parameters())]
        grad = torch.randn(2, 3, 8, dtype=torch.float64)
        out = lean(x)
        out.backward(grad)
        lean_grads = _grads(*params)
        for p in params:
            p.grad = None
        ref = plain(x)
        ref.backward(grad)
        torch.testing.assert_close(out, ref, **TOL)
        for got, want in zip(lean_grads, _grads(*params)):
            torch.testing.assert_close(got, want, **TOL)
        for p in params:
            p.grad = None


def test_gradcheck():
    fc = nn.Linear(6, 4).double()
    h = torch.randn(5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t, w, b: gelu_linear(t, fc), (h, fc.weight, fc.bias))
    norm = nn.BatchNorm1d(6).double()
    assert torch.autograd.gradcheck(lambda t: norm_linears(t, norm, [fc])[0], (h,))


def test_sync_batchnorm_is_refused():
    with pytest.raises(TypeError, match="plain BatchNorm1d"):
        norm_linears(torch.randn(2, 4), nn.SyncBatchNorm(4), [nn.Linear(4, 4)])


@pytest.mark.parametrize("video", [True, False])
def test_patch_embed_norm_matches_convolution_then_layer_norm(video):
    from vast.ops.recompute import patch_embed_norm

    conv = (nn.Conv3d(3, 8, (2, 4, 4), (2, 4, 4)) if video else nn.Conv2d(3, 8, 4, 4)).double()
    norm = nn.LayerNorm(8).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    shape = (2, 3, 4, 8, 12) if video else (2, 3, 8, 12)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    params = [x, conv.weight, conv.bias, norm.weight, norm.bias]
    out = patch_embed_norm(x, conv, norm)
    grad = torch.randn_like(out)
    out.backward(grad)
    lean_grads = _grads(*params)
    for p in params:
        p.grad = None
    y = conv(x)
    tokens = y.permute(0, 2, 3, 4, 1) if video else y.permute(0, 2, 3, 1).unsqueeze(1)
    ref = norm(tokens)
    ref.backward(grad)
    torch.testing.assert_close(out, ref, **TOL)
    for got, want in zip(lean_grads, _grads(*params)):
        torch.testing.assert_close(got, want, **TOL)
