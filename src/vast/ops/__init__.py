"""Tensor operators of the Affine-Shift family."""

from vast.ops.shift import (
    ShiftGroups,
    TokenShift,
    shift_group_sizes,
    shift_tokens,
    shift_tokens_reference,
)

__all__ = [
    "ShiftGroups",
    "TokenShift",
    "shift_group_sizes",
    "shift_tokens",
    "shift_tokens_reference",
]
