"""The temporal context term of the Affine-Shift mixer, ``z + W_c mean_t(u)``, and its streaming form.

Self-attention connects every frame in every layer; a one-frame shift only its neighbours. The context
term adds the uniform part of temporal attention: every token gets ``W_c`` of the mean of its
position's normalised inputs over the clip (causal: over the frames so far), so one block reaches every
frame (``docs/study.md``, "Temporal reach").
"""

from __future__ import annotations

import torch
from torch import nn


def temporal_mean(u: torch.Tensor, causal: bool) -> torch.Tensor:
    """The mean of channels-last tokens ``(B, T, H, W, C)`` over time at each position: ``(B, 1, H, W, C)``,
    or with ``causal`` the running mean over the frames up to each one, ``(B, T, H, W, C)``."""
    if not causal:
        return u.mean(1, keepdim=True)
    seen = torch.arange(1, u.shape[1] + 1, dtype=u.dtype, device=u.device).view(1, -1, 1, 1, 1)
    return u.cumsum(1) / seen


class TemporalContext(nn.Module):
    """``z + W_c mean_t(u)`` (``causal``: the running mean). Costs C^2 multiply-adds per position (per
    token when causal). Zero-initialised, so a fresh mixer is the mixer without it."""

    def __init__(self, dim: int, causal: bool = False) -> None:
        super().__init__()
        self.causal = causal
        self.proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return z + self.proj(temporal_mean(u, self.causal))

    def extra_repr(self) -> str:
        return f"causal={self.causal}"


class NoContext(nn.Module):
    """The mixer without a temporal context term: ``z`` as it is."""

    def __init__(self, dim: int, causal: bool = False) -> None:
        super().__init__()

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return z


class CarriedContext(nn.Module):
    """A causal :class:`TemporalContext` for one token frame at a time (streaming): the running sum of its
    input and the number of frames summed are :attr:`carried` from step to step."""

    def __init__(self, context: TemporalContext) -> None:
        super().__init__()
        if not context.causal:
            raise ValueError("this context averages over the whole clip: only a causal one runs one frame at a time")
        self.proj = context.proj
        self.carried: list[torch.Tensor] | None = None

    def forward(self, z: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if self.carried is None:
            total, seen = torch.zeros_like(u), torch.zeros(1, dtype=u.dtype, device=u.device)
        else:
            total, seen = self.carried
        total, seen = total + u, seen + 1
        self.carried = [total, seen]
        return z + self.proj(total / seen)
