"""The AST / VAST model family and its registry."""

from vast.models import affine_shift, peers  # noqa: F401  (fill the registry: VAST / AST and the study's peers)
from vast.models.affine_shift import AffineShiftBlock, AffineShiftMixer, AffineShiftTransformer
from vast.models.factory import create_model
from vast.models.flops import count_flops, count_params
from vast.models.folder import load_package
from vast.models.registry import get_entrypoint, list_models, register_model
from vast.models.weights import LoadReport, load_weights, read_state_dict

__all__ = [
    "AffineShiftBlock",
    "AffineShiftMixer",
    "AffineShiftTransformer",
    "LoadReport",
    "count_flops",
    "count_params",
    "create_model",
    "get_entrypoint",
    "list_models",
    "load_package",
    "load_weights",
    "read_state_dict",
    "register_model",
]
