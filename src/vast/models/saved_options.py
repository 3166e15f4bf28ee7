"""Model options as saved configurations name them, so that a saved run rebuilds the model it trained.

The temporal reach options of VAST (``temporal_offsets``, ``temporal_context``) got new defaults
(docs/study.md, "Temporal reach"). From then on, every configuration vast saves (checkpoints, model
folders, study records) names them explicitly (:func:`pin_options`). A saved configuration that does not
name them was written before, and is rebuilt with the values that held then (:func:`saved_options`),
so an earlier run never silently loads into another architecture.
"""

from __future__ import annotations

import inspect
from typing import Any

from vast.models.affine_shift import AffineShiftTransformer

REACH_OPTIONS = ("temporal_offsets", "temporal_context")
REACH_DEFAULTS_BEFORE: dict[str, Any] = {"temporal_offsets": 1, "temporal_context": False}


def _is_vast(name: str) -> bool:
    return name.startswith("vast_")


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value  # YAML and JSON hold lists


def reach_defaults() -> dict[str, Any]:
    """Today's defaults of the temporal reach options."""
    parameters = inspect.signature(AffineShiftTransformer).parameters
    return {key: _plain(parameters[key].default) for key in REACH_OPTIONS}


def pin_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` of model ``name`` with the temporal reach options named (today's defaults where absent)."""
    if not _is_vast(name):
        return dict(options)
    return {**reach_defaults(), **options}


def saved_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options a saved configuration of ``name`` was trained with: temporal reach options it does not
    name take the values that held before they were named."""
    if not _is_vast(name):
        return dict(options)
    return {**REACH_DEFAULTS_BEFORE, **options}
