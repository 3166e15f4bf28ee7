"""Normalisation layers for channels-last tokens ``(B, T, H, W, C)``, and BatchNorm's fused form.

The ``norm`` option of the Affine-Shift models (``docs/design.md``): per-token LayerNorm (as Swin and
ViT), BatchNorm over every token of the batch, or GroupNorm with one group over each sample (as
PoolFormer and ShiftViT). In eval mode BatchNorm is an affine map per channel, which
:func:`fold_norm` folds into the linear layer after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ChannelsLastBatchNorm(nn.Module):
    """BatchNorm over every token of the batch (per channel). It wraps ``nn.BatchNorm1d`` rather than
    subclassing it so that ``nn.SyncBatchNorm.convert_sync_batchnorm`` swaps the inner layer only."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class ChannelsLastGroupNorm(nn.Module):
    """GroupNorm with one group: statistics over (T, H, W, C) of each sample, per-channel affine."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[1:], None, None, self.eps) * self.weight + self.bias


NORM_LAYERS: dict[str, type[nn.Module]] = {
    "batchnorm": ChannelsLastBatchNorm,
    "layernorm": nn.LayerNorm,
    "groupnorm": ChannelsLastGroupNorm,
}


def foldable(norm: nn.Module) -> ChannelsLastBatchNorm | None:
    """``norm`` if it can be folded into the linear layer after it (a BatchNorm), else None (LayerNorm and
    GroupNorm depend on the data and stay)."""
    return norm if isinstance(norm, ChannelsLastBatchNorm) else None


def fold_norm(linear: nn.Linear, norm: ChannelsLastBatchNorm | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``linear(norm(x))`` as one linear map of ``x``, for an eval-mode BatchNorm
    ``norm`` (``x * a + c`` per channel), or of ``linear`` alone when ``norm`` is None."""
    weight = linear.weight.detach().double()
    bias = linear.bias.detach().double() if linear.bias is not None else weight.new_zeros(weight.shape[0])
    if norm is not None:
        bn = norm.bn
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        shift = bn.bias.detach().double() - bn.running_mean.double() * scale
        bias = bias + weight @ shift
        weight = weight * scale
    dtype = linear.weight.dtype
    return weight.to(dtype), bias.to(dtype)
