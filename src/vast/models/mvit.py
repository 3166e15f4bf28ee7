"""MViTv2 for the study: torchvision's ``MViT`` with MViTv2's choices (pooling residual, relative positions,
projection after attention), its block list generated from a few knobs; built for one clip size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torchvision.models.video.mvit import MSBlockConfig, MViT

from vast.errors import ConfigError
from vast.models.peer_entry import check_blocks, check_clip, int_tuple, peer_cfg, register_peer


def mvit_block_settings(
    embed_dim: int,
    depths: Sequence[int],
    num_heads: int,
    q_stride: Sequence[int],
    kv_stride: Sequence[int],
    pool_kernel: Sequence[int],
) -> list[MSBlockConfig]:
    """MViTv2's block list (torchvision's form): the first block of every stage after the first doubles
    the width and the heads and pools the queries by ``q_stride``; keys and values are pooled by
    ``kv_stride`` in stage 1, divided by ``q_stride`` per stage (at least 1), so their resolution stays
    constant until it reaches the queries' (MViTv2's adaptive kv stride)."""
    settings, dim, heads, kv = [], embed_dim, num_heads, list(kv_stride)
    for stage, depth in enumerate(depths):
        for index in range(depth):
            pools = stage > 0 and index == 0
            if pools:
                kv = [max(k // q, 1) for k, q in zip(kv, q_stride)]
            settings.append(
                MSBlockConfig(
                    num_heads=heads * 2 if pools else heads,
                    input_channels=dim,
                    output_channels=dim * 2 if pools else dim,
                    kernel_q=list(pool_kernel),
                    kernel_kv=list(pool_kernel),
                    stride_q=list(q_stride) if pools else [1, 1, 1],
                    stride_kv=list(kv),
                )
            )
            if pools:
                dim, heads = dim * 2, heads * 2
    return settings


class MViTv2(MViT):
    """torchvision's MViT with MViTv2's choices, for clips of one size (``num_frames`` x ``image_size``):
    its position tables are sized for them, and ``forward`` refuses other sizes with a clear error."""

    def __init__(
        self,
        num_frames: int,
        image_size: tuple[int, int],
        block_setting: list[MSBlockConfig],
        **kwargs: Any,
    ) -> None:
        super().__init__(
            spatial_size=image_size,
            temporal_size=num_frames,
            block_setting=block_setting,
            residual_pool=True,
            residual_with_cls_embed=False,
            rel_pos_embed=True,
            proj_after_attn=True,
            **kwargs,
        )
        self.clip_size = (num_frames, *image_size)
        self.pretrained_cfg = peer_cfg(kwargs.get("num_classes", 400), self.clip_size)

    def check_input(self, x: torch.Tensor) -> None:
        check_clip(x, "mvit_v2", self.clip_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return super().forward(x)


def _mvit_token_sizes(
    clip: tuple[int, int, int], stride: tuple[int, ...], kernel: tuple[int, ...], padding: tuple[int, ...]
) -> tuple[int, int, int]:
    """The token map of the patch embedding, which torchvision assumes to be ``clip // stride``."""
    sizes = tuple((n + 2 * p - k) // s + 1 for n, s, k, p in zip(clip, stride, kernel, padding))
    if sizes != tuple(n // s for n, s in zip(clip, stride)):
        raise ConfigError(f"mvit_v2: patch_kernel/patch_padding give {sizes} tokens from {clip}, not clip // stride")
    return sizes  # type: ignore[return-value]


def _check_mvit_pooling(tokens: tuple[int, int, int], stages: int, q_stride: tuple[int, ...]) -> None:
    sizes = [tokens]
    for _ in range(stages - 1):
        if any(n % s for n, s in zip(sizes[-1], q_stride)):
            path = " -> ".join("x".join(map(str, s)) for s in sizes)
            raise ConfigError(
                f"mvit_v2: token maps {path} cannot be pooled by q_stride {q_stride} for {stages} stages; "
                f"use fewer stages (depths), a larger clip or a smaller patch_stride"
            )
        sizes.append(tuple(n // s for n, s in zip(sizes[-1], q_stride)))


@register_peer
def mvit_v2(
    *,
    num_classes: int = 400,
    num_frames: int = 8,
    image_size: int | Sequence[int] = 32,
    embed_dim: int = 32,
    depths: Sequence[int] = (1, 2, 5, 2),
    num_heads: int = 1,
    q_stride: Sequence[int] = (1, 2, 2),
    kv_stride: Sequence[int] = (1, 2, 2),
    pool_kernel: Sequence[int] = (3, 3, 3),
    patch_kernel: Sequence[int] = (3, 7, 7),
    patch_stride: Sequence[int] = (2, 4, 4),
    patch_padding: Sequence[int] = (1, 3, 3),
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> MViTv2:
    """MViTv2: stage widths ``embed_dim * 2**i`` with ``num_heads * 2**i`` heads, ``depths`` blocks each
    (see :func:`mvit_block_settings`), for clips of ``num_frames`` x ``image_size`` (an int or (H, W)).

    MViTv2-S at 16 x 224^2 is ``embed_dim=96, depths=(1, 2, 11, 2), kv_stride=(1, 8, 8)``. The defaults
    (MViTv2-T's depths, kv stride scaled to 8 x 8 token maps) fit 8 x 32^2 clips: tokens 4 x 8^2, then
    4 x 4^2, 4 x 2^2, 4 x 1^2; keys and values 4 x 4^2 until the queries are smaller.
    """
    depths = int_tuple(depths, "depths")
    check_blocks("mvit_v2", depths)
    if embed_dim % num_heads:
        raise ConfigError(f"mvit_v2: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    size = int_tuple(image_size, "image_size", 2)
    stride, q_stride = int_tuple(patch_stride, "patch_stride", 3), int_tuple(q_stride, "q_stride", 3)
    tokens = _mvit_token_sizes(
        (num_frames, *size),
        stride,
        int_tuple(patch_kernel, "patch_kernel", 3),
        int_tuple(patch_padding, "patch_padding", 3),
    )
    _check_mvit_pooling(tokens, len(depths), q_stride)
    settings = mvit_block_settings(
        embed_dim,
        depths,
        num_heads,
        q_stride,
        int_tuple(kv_stride, "kv_stride", 3),
        int_tuple(pool_kernel, "pool_kernel", 3),
    )
    return MViTv2(
        num_frames,
        (size[0], size[1]),
        settings,
        dropout=drop_rate,
        attention_dropout=attn_drop_rate,
        stochastic_depth_prob=drop_path_rate,
        num_classes=num_classes,
        patch_embed_kernel=int_tuple(patch_kernel, "patch_kernel", 3),
        patch_embed_stride=stride,
        patch_embed_padding=int_tuple(patch_padding, "patch_padding", 3),
    )
