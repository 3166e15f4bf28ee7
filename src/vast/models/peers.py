"""Peers for the study: attention (Video Swin, MViTv2) and CNN (TSM, TSN) video classifiers.

Registered in vast's registry (not timm's), so the trainer builds them by name and options exactly as it
builds VAST: ``vast.create_model(name, num_classes=N, **options)``. Each takes ``(B, 3, T, H, W)`` and
returns ``(B, num_classes)`` logits, and every option is a named keyword of its entry point, so a record
``{name, options, num_classes}`` rebuilds the same architecture.

* ``video_swin``: torchvision's ``SwinTransformer3d`` (Video Swin), with small defaults that fit 8 x 32^2.
* ``mvit_v2``: torchvision's ``MViT`` with MViTv2's choices (pooling residual, relative positions,
  projection after attention), its block list generated from a few knobs; built for one clip size.
* ``tsm``: a ResNet (torchvision's BasicBlock layout, any width and depth) on every frame, with TSM's
  residual shift: in each block's residual branch 1/8 of the channels come from the next frame and 1/8
  from the previous one (zeros at the clip ends); the per-frame features are averaged over time.
* ``tsn``: the same network without any shift, so it is blind to frame order.

:func:`options_for_gmacs` sizes a peer to a compute budget (multiply-adds counted by
:func:`vast.count_flops` on meta-device models).
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn
from torchvision.models.resnet import conv1x1, conv3x3
from torchvision.models.swin_transformer import SwinTransformerBlock
from torchvision.models.video.mvit import MSBlockConfig, MViT
from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d, SwinTransformer3d

from vast.errors import CheckpointError, ConfigError, InputShapeError
from vast.models.registry import get_entrypoint, register_model

__all__ = [
    "FrameResNet",
    "MViTv2",
    "VideoSwin",
    "WindowAttention3d",
    "mvit_block_settings",
    "peer_options",
    "temporal_shift",
    "window_position_index",
]

STUDY_PEERS = ("video_swin", "mvit_v2", "tsm", "tsn")


# --------------------------------------------------------------------------------------------------
# Options: named keywords only, unknown ones named with close matches
# --------------------------------------------------------------------------------------------------


def _peer(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register ``builder`` (keyword-only options) as a vast model entry point."""
    options = list(inspect.signature(builder).parameters)

    @functools.wraps(builder)
    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        if pretrained:
            raise CheckpointError(f"no pretrained weights for {builder.__name__}; peers train from scratch")
        for key in kwargs:
            if key not in options:
                close = difflib.get_close_matches(key, options, n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(close)}?" if close else f"options: {', '.join(options)}"
                raise ConfigError(f"{builder.__name__} has no option {key!r}; {hint}")
        return builder(**kwargs)

    return register_model(entry)


def peer_options(name: str) -> dict[str, Any]:
    """Every option of the peer ``name`` with its default."""
    params = inspect.signature(get_entrypoint(name)).parameters
    return {key: p.default for key, p in params.items() if key != "pretrained"}


def _ints(value: int | Sequence[int], name: str, length: int | None = None) -> tuple[int, ...]:
    """``value`` as a tuple of ints (YAML gives lists); a single int is repeated ``length`` times."""
    if isinstance(value, int) and length is not None:
        return (value,) * length
    if isinstance(value, int) or not all(isinstance(v, int) for v in value):
        raise ConfigError(f"{name} expects a list of integers; got {value!r}")
    values = tuple(value)
    if length is not None and len(values) != length:
        raise ConfigError(f"{name} expects {length} integers; got {value!r}")
    return values


def _check_blocks(name: str, depths: tuple[int, ...]) -> None:
    if not depths or min(depths) < 1 or sum(depths) < 2:  # torchvision's drop-path ramp divides by blocks - 1
        raise ConfigError(f"{name}: depths must be positive with at least 2 blocks in all; got {depths}")


DEFAULT_CLIP = (8, 32, 32)  # (T, H, W): the peers' default input (``pretrained_cfg``), the study's clip


def _pretrained_cfg(num_classes: int, clip: Sequence[int]) -> dict[str, Any]:
    """What vast's tools read of a model's config (``vast models``: the default input)."""
    return {"input_size": (3, *clip), "num_classes": num_classes}


def _check_clip(x: torch.Tensor, name: str, clip: tuple[int, ...] | None = None) -> None:
    """Raise :class:`InputShapeError` unless ``x`` is ``(B, 3, T, H, W)`` (of ``clip`` = (T, H, W) if given)."""
    shape = tuple(x.shape)
    if len(shape) == 5 and shape[1] == 3 and (clip is None or shape[2:] == clip):
        return
    expected = f"(B, 3, {', '.join(map(str, clip))})" if clip else "(B, 3, T, H, W)"
    built = " (it is built for one clip size: options num_frames, image_size)" if clip else ""
    raise InputShapeError(f"{name} takes clips {expected}{built}; got {shape}")


# --------------------------------------------------------------------------------------------------
# Video Swin
# --------------------------------------------------------------------------------------------------


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
        self.pretrained_cfg = _pretrained_cfg(self.num_classes, DEFAULT_CLIP)

    def check_input(self, x: torch.Tensor) -> None:
        _check_clip(x, "video_swin")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return super().forward(x)


@_peer
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
    depths = _ints(depths, "depths")
    num_heads = _ints(num_heads, "num_heads", len(depths))
    _check_blocks("video_swin", depths)
    for i, heads in enumerate(num_heads):
        if (embed_dim * 2**i) % heads:
            raise ConfigError(f"video_swin: stage {i} width {embed_dim * 2**i} is not divisible by {heads} heads")
    return VideoSwin(
        patch_size=list(_ints(patch_size, "patch_size", 3)),
        embed_dim=embed_dim,
        depths=list(depths),
        num_heads=list(num_heads),
        window_size=list(_ints(window_size, "window_size", 3)),
        mlp_ratio=mlp_ratio,
        dropout=proj_drop_rate,
        attention_dropout=attn_drop_rate,
        stochastic_depth_prob=drop_path_rate,
        num_classes=num_classes,
    )


# --------------------------------------------------------------------------------------------------
# MViTv2
# --------------------------------------------------------------------------------------------------


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
        self.pretrained_cfg = _pretrained_cfg(kwargs.get("num_classes", 400), self.clip_size)

    def check_input(self, x: torch.Tensor) -> None:
        _check_clip(x, "mvit_v2", self.clip_size)

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


@_peer
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
    depths = _ints(depths, "depths")
    _check_blocks("mvit_v2", depths)
    if embed_dim % num_heads:
        raise ConfigError(f"mvit_v2: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    size = _ints(image_size, "image_size", 2)
    stride, q_stride = _ints(patch_stride, "patch_stride", 3), _ints(q_stride, "q_stride", 3)
    tokens = _mvit_token_sizes(
        (num_frames, *size), stride, _ints(patch_kernel, "patch_kernel", 3), _ints(patch_padding, "patch_padding", 3)
    )
    _check_mvit_pooling(tokens, len(depths), q_stride)
    settings = mvit_block_settings(
        embed_dim, depths, num_heads, q_stride, _ints(kv_stride, "kv_stride", 3), _ints(pool_kernel, "pool_kernel", 3)
    )
    return MViTv2(
        num_frames,
        (size[0], size[1]),
        settings,
        dropout=drop_rate,
        attention_dropout=attn_drop_rate,
        stochastic_depth_prob=drop_path_rate,
        num_classes=num_classes,
        patch_embed_kernel=_ints(patch_kernel, "patch_kernel", 3),
        patch_embed_stride=stride,
        patch_embed_padding=_ints(patch_padding, "patch_padding", 3),
    )


# --------------------------------------------------------------------------------------------------
# TSM and TSN: a 2D ResNet on every frame
# --------------------------------------------------------------------------------------------------


def temporal_shift(x: torch.Tensor, frames: int, shift_div: int = 8) -> torch.Tensor:
    """TSM's shift on frame-major ``(B * frames, C, H, W)``: channels ``[0, C/d)`` of frame t are taken
    from frame t + 1, channels ``[C/d, 2C/d)`` from frame t - 1 (zeros where there is no such frame),
    the rest stay; ``d = shift_div``."""
    clips = x.unflatten(0, (-1, frames))  # (B, T, C, H, W)
    fold = clips.shape[2] // shift_div
    future = F.pad(clips[:, 1:, :fold], (0, 0, 0, 0, 0, 0, 0, 1))  # pad spec: W, H, C, then T
    past = F.pad(clips[:, :-1, fold : 2 * fold], (0, 0, 0, 0, 0, 0, 1, 0))
    return torch.cat((future, past, clips[:, :, 2 * fold :]), dim=2).flatten(0, 1)


class FrameBlock(nn.Module):
    """torchvision's ``BasicBlock`` (same layers and names) whose residual branch can see a temporal shift
    of its input (TSM's residual shift; the identity path keeps the unshifted input)."""

    def __init__(self, inplanes: int, planes: int, stride: int, shift_div: int, drop_path: float) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
        self.shift_div = shift_div
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = temporal_shift(x, frames, self.shift_div) if self.shift_div else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        return self.relu(identity + self.drop_path(out))


class FrameResNet(nn.Module):
    """A ResNet of ``FrameBlock`` s applied to every frame, features averaged over time, then classified.

    Stage widths ``width * 2**i``, ``depths[i]`` blocks each, torchvision's stem (7x7 conv stride 2,
    3x3 max pool stride 2) and layer names, so ``width=64, depths=(2, 2, 2, 2)`` has ResNet-18's
    parameters. The head is linear, so averaging features equals averaging per-frame logits (TSN's
    consensus) whenever ``drop_rate`` is 0. ``shift_div > 0``: TSM's residual shift of 2 / shift_div
    of the channels in every block; 0: none (TSN).
    """

    def __init__(
        self,
        num_classes: int = 400,
        width: int = 64,
        depths: Sequence[int] = (2, 2, 2, 2),
        shift_div: int = 0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.shift_div = shift_div
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # grows linearly with depth
        self.stage_names = [f"layer{i + 1}" for i in range(len(depths))]
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            stage = self._stage(
                width * 2 ** max(i - 1, 0), width * 2**i, i > 0, shift_div, rates[start : start + depth]
            )
            self.add_module(self.stage_names[i], stage)
        self.num_features = width * 2 ** (len(depths) - 1)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()
        self.pretrained_cfg = _pretrained_cfg(num_classes, DEFAULT_CLIP)

    @staticmethod
    def _stage(inplanes: int, planes: int, downsample: bool, shift_div: int, rates: list[float]) -> nn.Sequential:
        """``len(rates)`` blocks; the first one halves the resolution if ``downsample``."""
        blocks = [
            FrameBlock(inplanes if j == 0 else planes, planes, 2 if downsample and j == 0 else 1, shift_div, rate)
            for j, rate in enumerate(rates)
        ]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:  # torchvision's ResNet initialisation
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def check_input(self, x: torch.Tensor) -> None:
        _check_clip(x, "tsm" if self.shift_div else "tsn")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` clips to ``(B, T, num_features)`` per-frame features."""
        self.check_input(x)
        batch, frames = x.shape[0], x.shape[2]
        x = x.transpose(1, 2).flatten(0, 1)  # frame-major (B * T, C, H, W)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            for block in getattr(self, name):
                x = block(x, frames)
        return x.mean(dim=(2, 3)).unflatten(0, (batch, frames))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_drop(self.forward_features(x).mean(dim=1)))


def _check_resnet(name: str, width: int, depths: tuple[int, ...]) -> None:
    if width < 1 or not depths or min(depths) < 1:
        raise ConfigError(f"{name}: width and every depth must be positive; got width={width}, depths={depths}")


@_peer
def tsm(
    *,
    num_classes: int = 400,
    width: int = 16,
    depths: Sequence[int] = (2, 2, 2, 2),
    shift_div: int = 8,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> FrameResNet:
    """TSM (Lin, Gan, Han): a ResNet of ``width`` on every frame with the residual temporal shift of
    1 / ``shift_div`` of the channels forward and as many backward in every block; features averaged."""
    depths = _ints(depths, "depths")
    _check_resnet("tsm", width, depths)
    if shift_div < 2 or width < shift_div:
        raise ConfigError(f"tsm: shift_div must be >= 2 and <= width (a whole channel shifted); got {shift_div}")
    return FrameResNet(num_classes, width, depths, shift_div, drop_rate, drop_path_rate)


@_peer
def tsn(
    *,
    num_classes: int = 400,
    width: int = 16,
    depths: Sequence[int] = (2, 2, 2, 2),
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> FrameResNet:
    """TSN (Wang et al.): the ResNet of ``tsm`` without any shift; frames averaged, order-blind."""
    depths = _ints(depths, "depths")
    _check_resnet("tsn", width, depths)
    return FrameResNet(num_classes, width, depths, 0, drop_rate, drop_path_rate)
