"""Model registry: ``register_model``, ``list_models`` and ``get_entrypoint``.

Entry points are plain functions named after the model (timm's convention). Importing
:mod:`vast.models` fills the registry and registers the image models (``ast_*``) with timm as well.
``create_model`` (:mod:`vast.models.factory`) builds a registered model or a model folder.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import logging
from collections.abc import Callable

from torch import nn

from vast.errors import UnknownModelError

_logger = logging.getLogger(__name__)

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``fn`` under its own name as a model entry point."""
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the shell-style ``pattern``."""
    return sorted(name for name in _ENTRYPOINTS if fnmatch.fnmatch(name, pattern))


def get_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entry point of ``name``; an unknown name raises an error that lists close names."""
    if name not in _ENTRYPOINTS:
        close = difflib.get_close_matches(name, list(_ENTRYPOINTS), n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(list_models())}"
        raise UnknownModelError(f"unknown model {name!r}; {hint} (see `vast models`)")
    return _ENTRYPOINTS[name]


def is_registered(name: str) -> bool:
    """Whether ``name`` is a registered model name."""
    return name in _ENTRYPOINTS


def model_options(name: str) -> set[str] | None:
    """The keyword options the entry point of ``name`` takes, or None where it does not say (it passes
    ``**kwargs`` on: AST / VAST, timm's models). A peer's entry names its options (its builder's)."""
    parameters = inspect.signature(get_entrypoint(name)).parameters  # follows functools.wraps
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return set(parameters) - {"pretrained", "num_classes"}

