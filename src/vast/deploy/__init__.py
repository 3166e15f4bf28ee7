"""Deploying a trained model: model folders written (:mod:`vast.deploy.package`: ``config.json``,
``model.safetensors``, a model card) and the opt-in inference forms, under their public names.

The model that ``vast.create_model`` returns is the reference (plain PyTorch layers). Nothing changes
it unless asked: ``model.eval().fuse_for_inference()`` (or :func:`fuse_for_inference`, or timm's
``reparameterize_model``) rebuilds its layers with the fused forms that :mod:`vast.ops` keeps beside
each layer. ``quantize(model, mode)`` makes an int8 copy (:mod:`vast.deploy.quantize`). Reading a
model folder is :mod:`vast.models.folder` (``vast.create_model(folder)``).
"""

from vast.deploy.package import write_package
from vast.deploy.quantize import QuantizationInfo, QuantizedModel, quantize
from vast.models.affine_shift import FusedAffineShiftBlock
from vast.models.folder import load_package
from vast.ops.fuse import fuse_for_inference
from vast.ops.packed_linear import PackedLinear, onednn_linear_available, packed_bytes
from vast.ops.patch import FusedPatchMerging
from vast.ops.shift import InferenceTokenShift

__all__ = [
    "FusedAffineShiftBlock",
    "FusedPatchMerging",
    "InferenceTokenShift",
    "PackedLinear",
    "QuantizationInfo",
    "QuantizedModel",
    "fuse_for_inference",
    "load_package",
    "onednn_linear_available",
    "packed_bytes",
    "quantize",
    "write_package",
]
