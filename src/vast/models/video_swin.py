"""Video Swin for the study: torchvision's ``SwinTransformer3d`` with small defaults that fit 8 x 32^2, and
its relative position bias looked up for the window actually used (torchvision cuts the full window's
index, which is wrong once a window shrinks in H or W)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models.swin_transformer import SwinTransformerBlock
from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d, SwinTransformer3d

from vast.errors import ConfigError
from vast.models.peer_entry import DEFAULT_CLIP, check_blocks, check_clip, int_tuple, peer_cfg, register_peer


def window_position_index(full_index: torch.Tensor, full: Sequence[int], window: Sequence[int]) -> torch.Tensor:
    """The relative position index of the tokens of a ``window`` (t, h, w) inside the ``full`` window.

    ``full_index`` is the full window's ``(vol, vol)`` index (torchvision's ``relative_position_index``:
    the table row of the offset p - q of tokens p, q). A token of the smaller window sits at the same
    (t, h, w) coordinates in the full window, so its pairs keep their offsets and table rows: the index is
    the full one restricted to those coordinates, for queries and keys.
    """
    t, h, w = window
    grid = full_index.view(*full, *full)
    return grid[:t, :h, :w, :t, :h, :w].reshape(t * h * w, t * h * w)


torch.fx.wrap("window_position_index")  # window sizes are computed at run time, as in torchvision


class WindowAttention3d(ShiftedWindowAttention3d):
    """torchvision's ``ShiftedWindowAttention3d`` (same parameters, buffers and names) with the relative
    position bias of the window actually used.

    torchvision shrinks a window to a map smaller than it, then takes ``relative_position_index[:vol, :vol]``
    of the full window's index. The flattened (t, h, w) tokens of a window smaller in H or W are not the
    first ``vol`` tokens of the full window, so those pairs get the biases of other offsets (the same
    bias for different offsets, different biases for the same offset): with video_swin's defaults at
    8 x 32^2, stage 3's (4, 2, 2) windows of (4, 4, 4) get 49 rows for their 63 offsets, e.g. (0, 0, 1)
    and (0, 1, -1) share one. Here every pair gets its own offset's row.
    """

    def get_relative_position_bias(self, window_size: list[int]) -> torch.Tensor:
        index = window_position_index(self.relative_position_index, self.window_size, window_size)
        vol = window_size[0] * window_size[1] * window_size[2]
        bias = self.relative_position_bias_table[index.flatten()].view(vol, vol, -1)
        return bias.permute(2, 0, 1).contiguous().unsqueeze(0)  # (1, heads, vol, vol), as torchvision's


def _swin_block(*args: Any, attn_layer: Callable[..., nn.Module] | None = None, **kwargs: Any) -> SwinTransformerBlock:
    """torchvision's ``SwinTransformerBlock`` with :class:`WindowAttention3d` in place of the ``attn_layer``
    given (``SwinTransformer3d`` passes ``ShiftedWindowAttention3d`` to ``block`` explicitly, so a
    ``partial`` with another ``attn_layer`` would be overridden)."""
    return SwinTransformerBlock(*args, attn_layer=WindowAttention3d, **kwargs)


class VideoSwin(SwinTransformer3d):
    """torchvision's ``SwinTransformer3d`` (same layers and names, so its checkpoints load) with vast's
    ``check_input`` and ``pretrained_cfg``, and :class:`WindowAttention3d`, which fixes torchvision's
    position bias in windows shrunk to small maps; it takes clips of any size (maps are padded to whole
    windows)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(block=_swin_block, **kwargs)
        self.pretrained_cfg = peer_cfg(self.num_classes, DEFAULT_CLIP)

    def check_input(self, x: torch.Tensor) -> None:
        check_clip(x, "video_swin")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return super().forward(x)


@register_peer
def video_swin(
    *,
    num_classes: int = 400,
    embed_dim: int = 32,
    depths: Sequence[int] = (2, 2, 2, 2),
    num_heads: Sequence[int] = (1, 2, 4, 8),
    patch_size: Sequence[int] = (2, 4, 4),
    window_size: Sequence[int] = (4, 4, 4),
    mlp_ratio: float = 4.0,
    proj_drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> VideoSwin:
    """Video Swin (torchvision's ``SwinTransformer3d``): stage widths ``embed_dim * 2**i``.

    ``patch_size`` and ``window_size`` are (T, H, W); a window larger than a stage's map shrinks to
    it (torchvision), so (4, 4, 4) windows on 8 x 32^2 clips with (2, 4, 4) patches cover all 4 token
    frames and 4 x 4 of the 8 x 8 tokens in stage 1, the whole map from stage 2 on.
    Swin-T is ``embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=(8, 7, 7)``.
    """
    depths = int_tuple(depths, "depths")
    num_heads = int_tuple(num_heads, "num_heads", len(depths))
    check_blocks("video_swin", depths)
    for i, heads in enumerate(num_heads):
        if (embed_dim * 2**i) % heads:
            raise ConfigError(f"video_swin: stage {i} width {embed_dim * 2**i} is not divisible by {heads} heads")
    return VideoSwin(
        patch_size=list(int_tuple(patch_size, "patch_size", 3)),
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(num_heads),
        window_size=list(int_tuple(window_size, "window_size", 3)),
        mlp_ratio=mlp_ratio,
        dropout=proj_drop_rate,
        attention_dropout=attn_drop_rate,
        stochastic_depth_prob=drop_path_rate,
        num_classes=num_classes,
    )
