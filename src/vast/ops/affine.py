"""The affine part of the Affine-Shift mixer: ``z = s * (1 + g) + b`` on the shifted values ``s``.

The ``affine`` option (``docs/design.md``): ``dynamic`` predicts ``g`` and ``b`` per token and channel
from the normalised input ``u`` (the role of MHSA's queries and keys), ``static`` learns them per
channel, ``none`` is the plain shift (the ablation).
"""

from __future__ import annotations

import torch
from torch import nn


class DynamicAffine(nn.Module):
    """Scale ``g`` and bias ``b`` predicted per token and channel from the normalised input ``u``:
    ``z = s * (1 + g(u)) + b(u)``.

    Zero-initialised, so a fresh mixer is exactly a plain shift.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 2 * dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        g, b = self.proj(u).chunk(2, dim=-1)
        return torch.addcmul(b, s, 1.0 + g)


class StaticAffine(nn.Module):
    """Learned per-channel ``g`` and ``b``, the same for every token and input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, s, 1.0 + self.scale)


class NoAffine(nn.Module):
    """The plain shift (the ablation without any affine): ``z = s``."""

    def __init__(self, dim: int) -> None:
        super().__init__()

    def forward(self, s: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return s


AFFINES: dict[str, type[nn.Module]] = {"dynamic": DynamicAffine, "static": StaticAffine, "none": NoAffine}
