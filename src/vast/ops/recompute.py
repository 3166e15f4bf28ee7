"""Memory-lean autograd for the Affine-Shift block: keep the inputs of cheap element-wise steps and
recompute their outputs in the backward pass, instead of storing both.

Plain autograd keeps, per block and token, the BatchNorm input *and* its output (the output is what
the next linear layers save), and the GELU input *and* its output (4C each: the MLP's widest
tensors). Here BatchNorm and GELU are fused with the linear layers that consume them:

* :func:`norm_linears` runs ``BatchNorm -> Linear_1 ... Linear_k`` and saves only the norm's input and
  statistics; the normalised tensor is rebuilt in the backward pass (one ``addcmul``);
* :func:`layer_norm_linear` does the same for ``LayerNorm -> Linear`` (patch merging);
* :func:`patch_embed_norm` runs the patch embedding (a non-overlapping convolution) and its LayerNorm
  and saves only the clip, which the caller holds anyway; the convolution (the model's smallest
  matmul, 48 or 96 inputs per token) is recomputed in the backward pass;
* :func:`gelu_linear` runs ``GELU -> Linear`` and saves only the GELU input.

The matmuls are never recomputed, only one element-wise pass each. The gradients are those of
plain autograd (same ATen kernels: ``native_batch_norm_backward``, ``gelu_backward``), and the
running statistics are updated once, exactly as ``nn.BatchNorm1d`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Ctx = Any  # torch.autograd.function.FunctionCtx


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1, t.shape[-1])


class _NormLinears(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Ctx,
        x: torch.Tensor,
        norm_weight: torch.Tensor,
        norm_bias: torch.Tensor,
        running_mean: torch.Tensor,
        running_var: torch.Tensor,
        training: bool,
        momentum: float,
        eps: float,
        *params: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        x2d = _flat(x)
        u, save_mean, save_invstd = torch.native_batch_norm(
            x2d, norm_weight, norm_bias, running_mean, running_var, training, momentum, eps
        )
        weights, biases = params[0::2], params[1::2]
        outs = tuple(F.linear(u, w, b).reshape(*x.shape[:-1], w.shape[0]) for w, b in zip(weights, biases))
        ctx.save_for_backward(x, norm_weight, norm_bias, running_mean, running_var, save_mean, save_invstd, *weights)
        ctx.training, ctx.eps = training, eps
        return outs

    @staticmethod
    def backward(ctx: Ctx, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, norm_weight, norm_bias, running_mean, running_var, save_mean, save_invstd, *weights = ctx.saved_tensors
        x2d = _flat(x)
        if ctx.training:
            mean, invstd = save_mean, save_invstd
        else:
            mean, invstd = running_mean, torch.rsqrt(running_var + ctx.eps)
        scale = invstd * norm_weight
        u = torch.addcmul(norm_bias - mean * scale, x2d, scale)  # the normalised input, rebuilt
        grad_u = None
        param_grads: list[torch.Tensor | None] = []
        needs = ctx.needs_input_grad[8:]
        for i, (grad, weight) in enumerate(zip(grads, weights)):
            g2d = _flat(grad)
            grad_u = g2d @ weight if grad_u is None else grad_u.addmm_(g2d, weight)
            param_grads.append(g2d.t() @ u if needs[2 * i] else None)
            param_grads.append(g2d.sum(0) if needs[2 * i + 1] else None)
        grad_x, grad_w, grad_b = torch.ops.aten.native_batch_norm_backward(
            grad_u,
            x2d,
            norm_weight,
            running_mean,
            running_var,
            save_mean,
            save_invstd,
            ctx.training,
            ctx.eps,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]],
        )
        grad_x = None if grad_x is None else grad_x.reshape(x.shape)
        return (grad_x, grad_w, grad_b, None, None, None, None, None, *param_grads)


def lean_norm_supported(norm: nn.Module) -> bool:
    """A plain ``BatchNorm1d`` that tracks running statistics (not SyncBatchNorm, not a subclass)."""
    return type(norm) is nn.BatchNorm1d and norm.track_running_stats and norm.affine


def norm_linears(x: torch.Tensor, norm: nn.BatchNorm1d, linears: Sequence[nn.Linear]) -> tuple[torch.Tensor, ...]:
    """``tuple(linear(norm(x)) for linear in linears)`` over the last dimension of ``x``, saving only
    ``x`` and the norm's statistics for the backward pass (see the module docstring).

    ``norm`` updates its running statistics as ``nn.BatchNorm1d.forward`` would (momentum, or the
    cumulative average when ``momentum is None``).
    """
    if not lean_norm_supported(norm):
        raise TypeError(f"norm_linears needs a plain BatchNorm1d with running statistics, got {norm!r}")
    momentum = 0.0 if norm.momentum is None else norm.momentum
    if norm.training and norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:
            momentum = 1.0 / float(norm.num_batches_tracked)
    params: list[torch.Tensor] = []
    for linear in linears:
        bias = linear.bias if linear.bias is not None else linear.weight.new_zeros(linear.out_features)
        params += [linear.weight, bias]
    return _NormLinears.apply(
        x, norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.training, momentum, norm.eps, *params
    )


class _GeluLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx: Ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        h, weight = ctx.saved_tensors
        g2d, h2d = _flat(grad), _flat(h)
        grad_weight = g2d.t() @ F.gelu(h2d) if ctx.needs_input_grad[1] else None  # GELU recomputed
        grad_bias = g2d.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        grad_h = None
        if ctx.needs_input_grad[0]:
            grad_a = g2d @ weight
            grad_h = torch.ops.aten.gelu_backward.grad_input(grad_a, h2d, grad_input=grad_a).reshape(h.shape)
        return grad_h, grad_weight, grad_bias


def gelu_linear(h: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """``linear(gelu(h))`` (exact, erf GELU), saving only ``h`` for the backward pass."""
    return _GeluLinear.apply(h, linear.weight, linear.bias)


class _LayerNormLinear(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Ctx,
        x: torch.Tensor,
        norm_weight: torch.Tensor,
        norm_bias: torch.Tensor,
        eps: float,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
    ) -> torch.Tensor:
        x2d = _flat(x)
        u, mean, rstd = torch.native_layer_norm(x2d, [x2d.shape[1]], norm_weight, norm_bias, eps)
        ctx.save_for_backward(x2d, norm_weight, norm_bias, mean, rstd, weight)
        ctx.has_bias, ctx.shape = bias is not None, x.shape
        return F.linear(u, weight, bias).reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx: Ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x2d, norm_weight, norm_bias, mean, rstd, weight = ctx.saved_tensors
        g2d = _flat(grad)
        grad_weight = None
        if ctx.needs_input_grad[4]:
            u = torch.addcmul(norm_bias, (x2d - mean) * rstd, norm_weight)  # the normalised input, rebuilt
            grad_weight = g2d.t() @ u
        grad_bias = g2d.sum(0) if ctx.has_bias and ctx.needs_input_grad[5] else None
        grad_x, grad_nw, grad_nb = torch.ops.aten.native_layer_norm_backward(
            g2d @ weight,
            x2d,
            [x2d.shape[1]],
            mean,
            rstd,
            norm_weight,
            norm_bias,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]],
        )
        grad_x = None if grad_x is None else grad_x.reshape(ctx.shape)
        return grad_x, grad_nw, grad_nb, None, grad_weight, grad_bias


def layer_norm_linear(x: torch.Tensor, norm: nn.LayerNorm, linear: nn.Linear) -> torch.Tensor:
    """``linear(norm(x))`` for a LayerNorm over the last dimension, saving only ``x`` and the norm's
    per-token statistics for the backward pass."""
    if len(norm.normalized_shape) != 1 or norm.weight is None or norm.bias is None:
        raise TypeError(f"layer_norm_linear needs an affine LayerNorm over the last dimension, got {norm!r}")
    return _LayerNormLinear.apply(x, norm.weight, norm.bias, norm.eps, linear.weight, linear.bias)


def _tokens(y: torch.Tensor) -> torch.Tensor:
    """Channels-first convolution output to contiguous channels-last tokens (B, T, H, W, C)."""
    if y.dim() == 4:  # an image: (B, C, H, W) -> (B, 1, H, W, C)
        return y.permute(0, 2, 3, 1).unsqueeze(1).contiguous()
    return y.permute(0, 2, 3, 4, 1).contiguous()


def _conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: list[int]) -> torch.Tensor:
    return (F.conv3d if x.dim() == 5 else F.conv2d)(x, weight, bias, stride)


class _PatchEmbedNorm(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Ctx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: list[int],
        norm_weight: torch.Tensor,
        norm_bias: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        tokens = _tokens(_conv(x, weight, bias, stride))
        out, mean, rstd = torch.native_layer_norm(tokens, [tokens.shape[-1]], norm_weight, norm_bias, eps)
        ctx.save_for_backward(x, weight, bias, norm_weight, norm_bias, mean, rstd)
        ctx.stride = stride
        return out

    @staticmethod
    def backward(ctx: Ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, bias, norm_weight, norm_bias, mean, rstd = ctx.saved_tensors
        y = _conv(x, weight, bias, ctx.stride)  # recomputed: the convolution output is not stored
        tokens = _tokens(y)
        grad_tokens, grad_nw, grad_nb = torch.ops.aten.native_layer_norm_backward(
            grad.contiguous(),
            tokens,
            [tokens.shape[-1]],
            mean,
            rstd,
            norm_weight,
            norm_bias,
            [True, ctx.needs_input_grad[4], ctx.needs_input_grad[5]],
        )
        del tokens
        if x.dim() == 5:
            grad_y = grad_tokens.permute(0, 4, 1, 2, 3).contiguous()
        else:
            grad_y = grad_tokens.squeeze(1).permute(0, 3, 1, 2).contiguous()
        spatial = x.dim() - 2
        grad_x, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_y,
            x,
            weight,
            None if bias is None else [bias.shape[0]],
            ctx.stride,
            [0] * spatial,
            [1] * spatial,
            False,
            [0] * spatial,
            1,
            [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias is not None and ctx.needs_input_grad[2]],
        )
        return grad_x, grad_w, grad_b, None, grad_nw, grad_nb, None


def patch_embed_norm(x: torch.Tensor, conv: nn.Conv2d | nn.Conv3d, norm: nn.LayerNorm) -> torch.Tensor:
    """``norm(tokens(conv(x)))`` for a non-overlapping patch convolution (kernel = stride, no padding),
    as channels-last tokens ``(B, T, H, W, C)`` (``T = 1`` for images), saving only ``x``, the weights
    and the norm's statistics; the convolution is recomputed in the backward pass."""
    if conv.kernel_size != conv.stride or any(conv.padding) or conv.groups != 1 or any(d != 1 for d in conv.dilation):
        raise TypeError(f"patch_embed_norm needs a non-overlapping convolution (kernel = stride), got {conv!r}")
    return _PatchEmbedNorm.apply(x, conv.weight, conv.bias, list(conv.stride), norm.weight, norm.bias, norm.eps)
