"""``fuse_for_inference``: a trained AST / VAST model rebuilt for fast inference.

Each block of the reference model becomes a :class:`FusedAffineShiftBlock`, which computes the same
function up to float rounding:

* BatchNorm (in eval mode an affine map per channel) is folded into the projections after it;
  LayerNorm and GroupNorm, which depend on the data, stay;
* the value and the dynamic affine's projections are one matmul (C -> 3C), with the affine's ``1 +``
  folded into its bias, so ``z = shift(v) * gain + bias`` is one ``addcmul``;
* a temporal context term takes the mean over time of the block's input (a BatchNorm, being per-channel
  affine, commutes with the mean and is folded into ``W_c``), and adds ``W_c`` of it to ``z``;
* every projection is a :class:`~vast.deploy.packed_linear.PackedLinear` (oneDNN with a packed weight
  on the CPU), both residual additions inside the matmuls that end each branch, and the shift writes
  its output in one pass (:mod:`vast.deploy.shift`).

Dropout and DropPath are the identity in eval mode and are dropped. The per-module ``fuse()`` methods
of the reference blocks follow timm's convention, so ``timm.utils.reparameterize_model`` does the same
rebuild.
"""

from __future__ import annotations

import torch
from timm.utils import reparameterize_model
from torch import nn

from vast.deploy.packed_linear import PackedLinear
from vast.deploy.shift import InferenceTokenShift
from vast.models.affine_shift import (
    AffineShiftBlock,
    ChannelsLastBatchNorm,
    DynamicAffine,
    NoAffine,
    PatchMerging,
    StaticAffine,
    TemporalContext,
    temporal_mean,
)


def _fold_norm(linear: nn.Linear, norm: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
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


def _require_eval(module: nn.Module) -> None:
    if module.training:
        raise RuntimeError("call model.eval() before fusing: BatchNorm statistics are folded into the weights")


class FusedAffineShiftBlock(nn.Module):
    """:class:`~vast.models.affine_shift.AffineShiftBlock` rebuilt for inference (module docstring)."""

    def __init__(self, block: AffineShiftBlock) -> None:
        super().__init__()
        _require_eval(block)
        mixer, mlp = block.mixer, block.mlp
        norm1 = block.norm1 if isinstance(block.norm1, ChannelsLastBatchNorm) else None
        norm2 = block.norm2 if isinstance(block.norm2, ChannelsLastBatchNorm) else None
        self.norm1 = nn.Identity() if norm1 is not None else block.norm1
        self.norm2 = nn.Identity() if norm2 is not None else block.norm2
        self.dim = mixer.value.in_features
        self.affine = {DynamicAffine: "dynamic", StaticAffine: "static", NoAffine: "none"}[type(mixer.affine)]
        weight, bias = _fold_norm(mixer.value, norm1)
        if self.affine == "dynamic":
            w_a, b_a = _fold_norm(mixer.affine.proj, norm1)
            b_a = torch.cat((b_a[: self.dim] + 1.0, b_a[self.dim :]))  # 1 + g in the gain's bias
            weight, bias = torch.cat((weight, w_a)), torch.cat((bias, b_a))
        if self.affine == "static":
            self.register_buffer("gain", 1.0 + mixer.affine.scale.detach().clone())
            self.register_buffer("offset", mixer.affine.bias.detach().clone())
        self.inproj = PackedLinear(weight, bias)
        self.shift = InferenceTokenShift(mixer.shift)
        self.context: PackedLinear | None = None
        self.causal_context = False
        if isinstance(mixer.context, TemporalContext):
            self.context = PackedLinear(*_fold_norm(mixer.context.proj, norm1))
            self.causal_context = mixer.context.causal
        self.proj = PackedLinear(mixer.proj.weight, mixer.proj.bias)
        self.fc1 = PackedLinear(*_fold_norm(mlp.fc1, norm2), activation="gelu")
        self.fc2 = PackedLinear(mlp.fc2.weight, mlp.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.norm1(x)
        out = self.inproj(u)
        c = self.dim
        if self.affine == "dynamic":
            z = torch.addcmul(out[..., 2 * c :], self.shift(out[..., :c]), out[..., c : 2 * c])
        elif self.affine == "static":
            z = torch.addcmul(self.offset, self.shift(out), self.gain)
        else:
            z = self.shift(out)
        if self.context is not None:
            z = z + self.context(temporal_mean(u, self.causal_context))
        x = self.proj(z, x)
        return self.fc2(self.fc1(self.norm2(x)), x)

    def train(self, mode: bool = True) -> FusedAffineShiftBlock:
        if mode:
            raise RuntimeError(
                "a model fused for inference cannot be trained (its norms are folded away); "
                "build it again with vast.create_model"
            )
        return super().train(False)


class FusedPatchMerging(nn.Module):
    """:class:`~vast.models.affine_shift.PatchMerging` with its reduction on a packed weight."""

    def __init__(self, merging: PatchMerging) -> None:
        super().__init__()
        _require_eval(merging)
        self.norm = merging.norm
        self.reduction = PackedLinear(merging.reduction.weight, merging.reduction.bias)

    forward = PatchMerging.forward


def fuse_for_inference(model: nn.Module, onednn: bool = True) -> nn.Module:
    """Rebuild ``model``'s Affine-Shift blocks and patch mergings for inference, in place; returns it.

    ``model`` must be in eval mode. ``onednn=False`` keeps the fusion but computes every projection
    with ``F.linear`` (the BLAS), to compare the two on one machine. Load weights before fusing: the
    state dict changes. Export the unfused model (TorchScript, ONNX and ``torch.export`` fuse on their
    own).
    """
    _require_eval(model)
    reparameterize_model(model, inplace=True)
    if not onednn:
        for module in model.modules():
            if isinstance(module, PackedLinear):
                module.onednn = False
    return model
