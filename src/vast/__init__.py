"""VAST: efficient attention-free video shift transformers (AST for images, VAST for video)."""

from vast.models import count_flops, create_model, list_models

__version__ = "0.1.0"

__all__ = ["__version__", "count_flops", "create_model", "list_models"]
