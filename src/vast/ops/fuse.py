"""``fuse_for_inference``: a trained AST / VAST model rebuilt for fast inference.

Each layer that has a faster inference form says so with a ``fuse()`` method (timm's convention, so
``timm.utils.reparameterize_model`` does the same rebuild), and that form lives beside it:

* the Affine-Shift block (:class:`vast.models.affine_shift.FusedAffineShiftBlock`): BatchNorm, in eval
  mode an affine map per channel, is folded into the projections after it (:func:`vast.ops.norm.fold_norm`;
  LayerNorm and GroupNorm, which depend on the data, stay), and both residual additions happen inside
  the matmuls that end each branch;
* its mixer (:class:`vast.ops.mixer.FusedAffineShiftMixer`): the value and the dynamic affine's
  projections are one matmul (C -> 3C) with the affine's ``1 +`` in its bias, so
  ``z = shift(v) * gain + bias`` is one ``addcmul``; a temporal context takes the mean over time of
  the block's input (a folded BatchNorm commutes with the mean) and adds ``W_c`` of it to ``z``; the
  shift writes its output in one pass (:class:`vast.ops.shift.InferenceTokenShift`);
* patch merging (:class:`vast.ops.patch.FusedPatchMerging`);
* every projection a :class:`~vast.ops.packed_linear.PackedLinear` (oneDNN with a packed weight on the CPU).

Dropout and DropPath are the identity in eval mode and are dropped.
"""

from __future__ import annotations

from timm.utils import reparameterize_model
from torch import nn

from vast.ops.packed_linear import PackedLinear


def require_eval(module: nn.Module) -> None:
    """Refuse to fuse a module in training mode (its BatchNorm statistics would be the wrong ones)."""
    if module.training:
        raise RuntimeError("call model.eval() before fusing: BatchNorm statistics are folded into the weights")


class InferenceOnly(nn.Module):
    """A module rebuilt for inference: it stays in eval mode, and ``train()`` refuses."""

    def train(self, mode: bool = True) -> InferenceOnly:
        if mode:
            raise RuntimeError(
                "a model fused for inference cannot be trained (its norms are folded away); "
                "build it again with vast.create_model"
            )
        return super().train(False)


def fuse_for_inference(model: nn.Module, onednn: bool = True) -> nn.Module:
    """Rebuild ``model``'s Affine-Shift blocks and patch mergings for inference, in place; returns it.

    ``model`` must be in eval mode. ``onednn=False`` keeps the fusion but computes every projection
    with ``F.linear`` (the BLAS), to compare the two on one machine. Load weights before fusing: the
    state dict changes. Export the unfused model (TorchScript, ONNX and ``torch.export`` fuse on their
    own).
    """
    require_eval(model)
    reparameterize_model(model, inplace=True)
    if not onednn:
        for module in model.modules():
            if isinstance(module, PackedLinear):
                module.onednn = False
    return model
