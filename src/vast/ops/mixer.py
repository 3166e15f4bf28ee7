"""The Affine-Shift token mixer, the attention replacement, and its fused inference form.

``W_o( shift(W_v u) * (1 + g(u)) + b(u) [+ W_c mean_t(u)] )`` on normalised channels-last tokens ``u``:
costs 4 C^2 multiply-adds per token with the dynamic affine (as MHSA's four projections) and no
token-by-token term; the shift itself is free. Its options are declared once, in :class:`MixerConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vast.errors import ConfigError
from vast.ops.affine import AFFINES, DynamicAffine, NoAffine, StaticAffine
from vast.ops.context import NoContext, TemporalContext, temporal_mean
from vast.ops.fuse import InferenceOnly, require_eval
from vast.ops.norm import ChannelsLastBatchNorm, fold_norm
from vast.ops.packed_linear import PackedLinear
from vast.ops.shift import InferenceTokenShift, TokenShift


@dataclass(frozen=True)
class MixerConfig:
    """The options of the Affine-Shift mixer, declared once (see ``docs/design.md``).

    ``affine``: ``"dynamic"`` (g, b predicted per token), ``"static"`` (learned per channel) or
    ``"none"``; ``spatial_fraction`` / ``temporal_fraction``: the share of channels shifted in space
    (four groups) and in time (two groups); ``temporal_shift``: off keeps every frame to itself;
    ``temporal_offset``: how many frames the temporal groups move; ``temporal_context``: add
    ``W_c mean_t(u)`` to the mixed tokens; ``causal``: nothing is read from a later frame (streaming).
    """

    affine: str = "dynamic"
    spatial_fraction: float = 1 / 3
    temporal_fraction: float = 1 / 4
    temporal_shift: bool = True
    causal: bool = False
    temporal_offset: int = 1
    temporal_context: bool = False

    def __post_init__(self) -> None:
        if self.affine not in AFFINES:
            raise ConfigError(f"unknown affine {self.affine!r}; choose one of {', '.join(AFFINES)}")
        offset = self.temporal_offset
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 1:
            raise ConfigError(f"temporal_offset must be a whole number of frames >= 1, got {offset!r}")


class AffineShiftMixer(nn.Module):
    """The attention replacement: ``W_o( shift(W_v u) * (1 + g(u)) + b(u) [+ W_c mean_t(u)] )``."""

    def __init__(self, dim: int, config: MixerConfig = MixerConfig(), proj_drop: float = 0.0) -> None:
        super().__init__()
        self.value = nn.Linear(dim, dim)
        self.shift = TokenShift(
            dim,
            config.spatial_fraction,
            config.temporal_fraction,
            config.temporal_shift,
            config.causal,
            config.temporal_offset,
        )
        self.affine = AFFINES[config.affine](dim)
        self.context = (TemporalContext if config.temporal_context else NoContext)(dim, config.causal)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        s = self.shift(self.value(u))  # shift(W_v u)
        z = self.affine(s, u)  # s * (1 + g(u)) + b(u)
        z = self.context(z, u)  # + W_c mean_t(u), when the block has a temporal context
        return self.proj_drop(self.proj(z))  # W_o z


class FusedAffineShiftMixer(InferenceOnly):
    """:class:`AffineShiftMixer` rebuilt for inference, with the eval-mode BatchNorm ``norm`` before it
    (or None) folded into its input projections: value and dynamic affine as one matmul C -> 3C whose
    gain bias holds the affine's ``1 +``, the one-pass shift, and the output projection adding the
    block's residual inside its matmul. ``forward(x, residual)`` takes the input as the norm leaves it
    (``x`` itself where the norm is folded)."""

    def __init__(self, mixer: AffineShiftMixer, norm: ChannelsLastBatchNorm | None) -> None:
        super().__init__()
        require_eval(mixer)
        self.dim = mixer.value.in_features
        self.affine = {DynamicAffine: "dynamic", StaticAffine: "static", NoAffine: "none"}[type(mixer.affine)]
        weight, bias = fold_norm(mixer.value, norm)
        if self.affine == "dynamic":
            w_a, b_a = fold_norm(mixer.affine.proj, norm)
            b_a = torch.cat((b_a[: self.dim] + 1.0, b_a[self.dim :]))  # 1 + g in the gain's bias
            weight, bias = torch.cat((weight, w_a)), torch.cat((bias, b_a))
        if self.affine == "static":
            self.register_buffer("gain", 1.0 + mixer.affine.scale.detach().clone())
            self.register_buffer("offset", mixer.affine.bias.detach().clone())
        self.inproj = PackedLinear(weight, bias)
        self.shift = InferenceTokenShift(mixer.shift)
        self.context: PackedLinear | None = None
        self.causal_context = False
        if isinstance(mixer.context, TemporalContext):
            self.context = PackedLinear(*fold_norm(mixer.context.proj, norm))
            self.causal_context = mixer.context.causal
        self.proj = PackedLinear(mixer.proj.weight, mixer.proj.bias)

    def forward(self, u: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        out = self.inproj(u)
        c = self.dim
        if self.affine == "dynamic":
            z = torch.addcmul(out[..., 2 * c :], self.shift(out[..., :c]), out[..., c : 2 * c])
        elif self.affine == "static":
            z = torch.addcmul(self.offset, self.shift(out), self.gain)
        else:
            z = self.shift(out)
        if self.context is not None:
            z = z + self.context(temporal_mean(u, self.causal_context))
        return self.proj(z, residual)
