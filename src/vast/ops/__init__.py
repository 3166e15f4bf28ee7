"""Tensor operators of the Affine-Shift family."""

from vast.ops.shift import (
    ShiftGroups,
    ShiftPlan,
    TokenShift,
    apply_shift,
    shift_group_sizes,
    shift_plan,
    shift_tokens,
    shift_tokens_reference,
)

__all__ = [
    "ShiftGroups",
    "ShiftPlan",
    "TokenShift",
    "apply_shift",
    "shift_group_sizes",
    "shift_plan",
    "shift_tokens",
    "shift_tokens_reference",
]
