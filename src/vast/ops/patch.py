"""Patch embedding and patch merging of the hierarchical Affine-Shift models, with their fused forms.

:class:`PatchEmbed` turns pixels into channels-last tokens ``(B, T, H, W, C)``; :func:`inflate_patch_kernel`
moves its kernel between image and video models (I3D inflation), and :func:`check_input_shape` refuses
inputs it cannot cut into patches. :class:`PatchMerging` halves the token
map between stages (Swin), and :class:`FusedPatchMerging` is its inference form.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vast.errors import InputShapeError
from vast.ops.fuse import InferenceOnly, require_eval
from vast.ops.packed_linear import PackedLinear


class PatchEmbed(nn.Module):
    """Non-overlapping patches to channels-last tokens: Conv2d (images) or Conv3d (video) + LayerNorm."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, t_patch: int, video: bool) -> None:
        super().__init__()
        self.video = video
        if video:
            kernel = (t_patch, patch_size, patch_size)
            self.proj: nn.Module = nn.Conv3d(in_chans, dim, kernel_size=kernel, stride=kernel)
        else:
            self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if self.video:
            x = x.permute(0, 2, 3, 4, 1)  # (B, C, T, H, W) -> (B, T, H, W, C)
        else:
            x = x.permute(0, 2, 3, 1).unsqueeze(1)  # (B, C, H, W) -> (B, 1, H, W, C)
        return self.norm(x)


def inflate_patch_kernel(weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Image (4-D) <-> video (5-D) patch-embedding kernels.

    An image kernel is repeated over ``t_patch`` frames and divided by ``t_patch`` (I3D inflation), so
    a static clip gives the image model's response; a video kernel loaded into an image model is
    summed over time, the inverse of that inflation.
    """
    if weight.dim() == 4 and target.dim() == 5:
        frames = target.shape[2]
        return weight.unsqueeze(2).repeat(1, 1, frames, 1, 1) / frames
    if weight.dim() == 5 and target.dim() == 4:
        return weight.sum(dim=2)
    if weight.dim() == 5 and target.dim() == 5 and weight.shape[2] != target.shape[2]:
        frames = target.shape[2]
        return weight.sum(dim=2, keepdim=True).repeat(1, 1, frames, 1, 1) / frames
    return weight


@torch.jit.ignore
def check_input_shape(x: torch.Tensor, name: str, in_chans: int, patch_size: int, t_patch: int, video: bool) -> None:
    """Raise :class:`InputShapeError` for an input that a patch embedding cannot take, naming the model
    ``name`` (one clear line, not a traceback from deep inside a convolution)."""
    shape = tuple(x.shape)
    if video:
        expected = f"(B, {in_chans}, T, H, W)"
        ok = len(shape) == 5 and shape[1] == in_chans and shape[2] % t_patch == 0
    else:
        expected = f"(B, {in_chans}, H, W)"
        ok = len(shape) == 4 and shape[1] == in_chans
    if not (ok and shape[-1] % patch_size == 0 and shape[-2] % patch_size == 0):
        frames = f", T a multiple of t_patch={t_patch}" if video else ""
        hint = " (a video model: add a time axis)" if video and len(shape) == 4 else ""
        raise InputShapeError(
            f"{name} expects input {expected}{frames} and H, W multiples of {patch_size}, "
            f"got {shape}{hint}; resize or crop the input"
        )


class PatchMerging(nn.Module):
    """2x2 spatial merging (Swin): concatenate each 2x2 neighbourhood, LayerNorm, Linear 4C -> C_out.

    Output size is ``ceil(H / 2) x ceil(W / 2)``.
    """

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # An odd height or width gets one zero row / column (as Swin), so 112 x 112 inputs work.
        x = F.pad(x, (0, 0, 0, x.shape[3] % 2, 0, x.shape[2] % 2))
        x = torch.cat([x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))

    @torch.jit.ignore
    def fuse(self) -> nn.Module:
        """The merging rebuilt for inference (timm's ``reparameterize_model`` convention)."""
        return FusedPatchMerging(self)


class FusedPatchMerging(InferenceOnly):
    """:class:`PatchMerging` with its reduction on a packed weight."""

    def __init__(self, merging: PatchMerging) -> None:
        super().__init__()
        require_eval(merging)
        self.norm = merging.norm
        self.reduction = PackedLinear(merging.reduction.weight, merging.reduction.bias)

    forward = PatchMerging.forward
