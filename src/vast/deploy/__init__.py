"""Opt-in inference forms of a trained model: fused blocks and packed oneDNN weights; and model
folders (:mod:`vast.deploy.package`: ``config.json``, ``model.safetensors``, a model card).

The model that ``vast.create_model`` returns is the reference (plain PyTorch layers). Nothing here
changes it unless asked: ``model.eval().fuse_for_inference()`` (or :func:`fuse_for_inference`, or
timm's ``reparameterize_model``) rebuilds its blocks with the modules of :mod:`vast.deploy.fuse`.
"""

from vast.deploy.fuse import FusedAffineShiftBlock, FusedPatchMerging, fuse_for_inference
from vast.deploy.packed_linear import PackedLinear, onednn_linear_available, packed_bytes

__all__ = [
    "FusedAffineShiftBlock",
    "FusedPatchMerging",
    "PackedLinear",
    "fuse_for_inference",
    "onednn_linear_available",
    "packed_bytes",
]
