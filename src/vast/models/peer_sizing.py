"""Sizing a peer to a compute budget: the width (and, if need be, the depths) at which a peer's
multiply-adds at a clip size land within a tolerance of a target, as the study matches peers to VAST."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vast.errors import ConfigError, InputShapeError
from vast.models.flops import meta_flops
from vast.models.peer_entry import int_tuple, peer_options

_WIDTH_KNOB = {"video_swin": "embed_dim", "mvit_v2": "embed_dim", "tsm": "width", "tsn": "width"}
_MIN_WIDTH, _MAX_WIDTH = 8, 4096
_WIDTH_STEPS = (8, 4, 2, 1)  # in units of the widths the heads allow


def _width_unit(name: str, options: dict[str, Any]) -> int:
    """The widths ``name`` accepts are multiples of this (every stage's width divisible by its heads)."""
    if name == "video_swin":
        heads = int_tuple(options["num_heads"], "num_heads", len(int_tuple(options["depths"], "depths")))
        return math.lcm(*(h // math.gcd(h, 2**i) for i, h in enumerate(heads)))
    return int(options["num_heads"]) if name == "mvit_v2" else 1


@functools.lru_cache(maxsize=64)
def _gmacs_quadratic(name: str, options: str, knob: str, probes: tuple[int, ...], shape: tuple[int, ...]) -> Any:
    """Coefficients of GMACs as a function of the width ``knob``, all other ``options`` (JSON) fixed.

    Multiply-adds are exactly a quadratic in the width (linear layers and convolutions grow as width^2;
    attention products, depthwise pooling and the head as width), so counts at three widths give it.
    """
    base = json.loads(options)
    return np.polyfit(probes, [meta_flops(name, shape, **{**base, knob: width})[0] for width in probes], 2)


def _closest_width(predict: Callable[[Any], Any], target: float, unit: int, low: int, tolerance: float) -> int:
    """The width (a multiple of ``unit``, at least ``low``) whose predicted GMACs are closest to ``target``;
    the roundest one (a multiple of 8, 4 or 2 units) if it is within a third of ``tolerance``."""
    widths = np.arange(low, _MAX_WIDTH + 1, unit)
    miss = np.abs(predict(widths) - target)
    for step in _WIDTH_STEPS[:-1]:
        best = int(np.argmin(np.where(widths % (step * unit) == 0, miss, np.inf)))
        if miss[best] <= tolerance / 3 * target:
            return int(widths[best])
    return int(widths[np.argmin(miss)])


def _depth_ladder(options: dict[str, Any], fixed: dict[str, Any]) -> list[list[int]]:
    """The depths tried in turn: the given or default ones, then one block per stage."""
    depths = list(int_tuple(options["depths"], "depths"))
    return [depths] if "depths" in fixed or set(depths) == {1} else [depths, [1] * len(depths)]


def _size_width(
    name: str, options: dict[str, Any], shape: tuple[int, ...], target: float, tolerance: float
) -> tuple[int, float]:
    """The width of ``name`` with ``options`` sized to ``target`` GMACs, and its counted GMACs."""
    knob, unit = _WIDTH_KNOB[name], _width_unit(name, options)
    low = -(-max(_MIN_WIDTH, int(options.get("shift_div", 0))) // unit) * unit
    fit = _gmacs_quadratic(name, json.dumps(options, sort_keys=True), knob, (low, 8 * low, 64 * low), shape)
    width = _closest_width(lambda w: np.polyval(fit, w), target, unit, low, tolerance)
    return width, meta_flops(name, shape, **{**options, knob: width})[0]  # the count, not the prediction


def options_for_gmacs(
    name: str,
    target_gmacs: float,
    input_shape: Sequence[int],
    tolerance: float = 0.15,
    *,
    num_classes: int = 400,
    **fixed: Any,
) -> dict[str, Any]:
    """Options of the peer ``name`` whose multiply-adds at ``input_shape`` (``(B, 3, T, H, W)``) lie
    within ``tolerance`` (relative) of ``target_gmacs``.

    The width knob (``embed_dim`` or ``width``) is searched with the default depths (or ``depths`` if
    given in ``fixed``), then, if no width fits, with one block per stage; other options keep their
    defaults or the ``fixed`` values. ``mvit_v2`` is built for the clip size of ``input_shape``. Counts
    run on meta-device models. Returns the fixed options plus the width, the depths (and for mvit_v2
    ``num_frames`` and ``image_size``), lists rather than tuples so the record stores as YAML / JSON.
    Raises :class:`ConfigError` when no width and depth land within the tolerance.
    """
    if name not in _WIDTH_KNOB:
        raise ConfigError(f"options_for_gmacs sizes the peers {', '.join(_WIDTH_KNOB)}; got {name!r}")
    if _WIDTH_KNOB[name] in fixed:
        raise ConfigError(f"options_for_gmacs searches {name}'s {_WIDTH_KNOB[name]}; do not fix it")
    shape = tuple(int(n) for n in input_shape)
    if len(shape) != 5:
        raise InputShapeError(f"input_shape must be (B, 3, T, H, W); got {shape}")
    if name == "mvit_v2":
        fixed = {"num_frames": shape[2], "image_size": shape[3] if shape[3] == shape[4] else list(shape[3:]), **fixed}
    knob, options = _WIDTH_KNOB[name], {**peer_options(name), **fixed, "num_classes": num_classes}
    tried = []
    for depths in _depth_ladder(options, fixed):
        width, found = _size_width(name, {**options, "depths": depths}, shape, target_gmacs, tolerance)
        if abs(found - target_gmacs) <= tolerance * target_gmacs:
            return {**fixed, knob: width, "depths": depths}
        tried.append(f"{knob}={width}, depths={depths}: {found:.4g}")
    raise ConfigError(
        f"no {name} lands within {tolerance:.0%} of {target_gmacs:.4g} GMACs at {shape} (closest: "
        f"{'; '.join(tried)} GMACs); give other fixed options (depths, patch sizes) or another target"
    )
