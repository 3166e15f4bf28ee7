"""The building blocks of the Affine-Shift family, each beside its inference and streaming forms.

=====================  ==========================================================================
module                 holds
=====================  ==========================================================================
``shift``              the channel layout (one :class:`ShiftPlan`), the shift's functions, and the
                       :class:`TokenShift` module with its one-pass and streaming forms
``norm``               channels-last BatchNorm / GroupNorm, ``NORM_LAYERS``, BatchNorm folding
``affine``             the dynamic, static and no affine
``context``            the temporal context term and its streaming form
``mixer``              the Affine-Shift token mixer and its fused form
``patch``              patch embedding (and its input check), patch merging and its fused form
``packed_linear``      the oneDNN linear layer of the fused forms
``fuse``               ``fuse_for_inference``: every layer's ``fuse()`` applied (timm's convention)
``recompute``          memory-lean training: norm and GELU outputs recomputed in the backward pass
=====================  ==========================================================================

``vast.ops`` imports nothing of vast but :mod:`vast.errors`; :mod:`vast.models` builds on it.
"""

from vast.ops.shift import (
    CarriedShift,
    InferenceTokenShift,
    ShiftGroup,
    ShiftGroups,
    ShiftPlan,
    TokenShift,
    apply_shift,
    plan_reference,
    shift_group_sizes,
    shift_plan,
    shift_tokens,
    shift_tokens_reference,
)

__all__ = [
    "CarriedShift",
    "InferenceTokenShift",
    "ShiftGroup",
    "ShiftGroups",
    "ShiftPlan",
    "TokenShift",
    "apply_shift",
    "plan_reference",
    "shift_group_sizes",
    "shift_plan",
    "shift_tokens",
    "shift_tokens_reference",
]
