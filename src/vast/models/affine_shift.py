"""Affine-Shift Transformers: AST (images) and VAST (video), the reference model.

An attention-free hierarchical transformer (Bulat, Martinez, Tzimiropoulos, arXiv 2208.11108) whose
token mixer is a zero-FLOP shift of channel groups to neighbouring tokens plus a light, input-dependent
per-channel affine. The paper's exact equations are not public; this file is the design of
``docs/design.md``, and every choice that is ours is a named option. Per block, on channels-last tokens
``x: (B, T, H, W, C)``::

    u = Norm(x)
    z = shift(W_v u) * (1 + g(u)) + b(u)      g, b = W_a u  (dynamic affine, zero-initialised)
    z = z + W_c mean_t(u)                     (temporal context, optional, zero-initialised)
    x = x + DropPath(W_o z)
    x = x + DropPath(MLP(Norm(x)))

Every layer here is a plain PyTorch layer that runs its own forward in every mode (eager, no_grad,
tracing, scripting, export), so hooks, parametrizations and wrappers see the real model. Speed-ups are
separate, explicit steps: :mod:`vast.deploy` (``fuse_for_inference``) for inference and
:mod:`vast.ops.recompute` (``set_memory_lean``) for training memory.

File order follows timm: blocks, model, ``checkpoint_filter_fn``, ``_create``, ``default_cfgs``,
registered entry points.
"""


import difflib
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models import PretrainedCfg, build_model_with_cfg, checkpoint_seq, generate_default_cfgs
from timm.models import register_model as timm_register_model
from timm.models._features import feature_take_indices
from torch import nn

from vast.errors import ConfigError, InputShapeError
from vast.models.registry import register_model
from vast.ops.recompute import ActivationRecompute
from vast.ops.shift import TokenShift

__all__ = [
    "AffineShiftBlock",
    "AffineShiftMixer",
    "AffineShiftTransformer",
    "MixerConfig",
    "checkpoint_filter_fn",
]


# --------------------------------------------------------------------------------------------------
# Normalisation layers for channels-last tokens
# --------------------------------------------------------------------------------------------------


class ChannelsLastBatchNorm(nn.Module):
    """BatchNorm over every token of the batch (per channel). It wraps ``nn.BatchNorm1d`` rather than
    subclassing it so that ``nn.SyncBatchNorm.convert_sync_batchnorm`` swaps the inner layer only."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class ChannelsLastGroupNorm(nn.Module):
    """GroupNorm with one group: statistics over (T, H, W, C) of each sample, per-channel affine."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[1:], None, None, self.eps) * self.weight + self.bias


NORM_LAYERS: dict[str, type[nn.Module]] = {
    "batchnorm": ChannelsLastBatchNorm,
    "layernorm": nn.LayerNorm,
    "groupnorm": ChannelsLastGroupNorm,
}


# --------------------------------------------------------------------------------------------------
# The affine part of the mixer: z = s * (1 + g) + b
# --------------------------------------------------------------------------------------------------


class DynamicAffine(nn.Module):
    """Scale ``g`` and bias ``b`` predicted per token and channel from the normalised input ``u``
    (the role of MHSA's queries and keys): ``z = s * (1 + g(u)) + b(u)``.

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


# --------------------------------------------------------------------------------------------------
# Temporal context: z + W_c mean_t(u)
# --------------------------------------------------------------------------------------------------


def temporal_mean(u: torch.Tensor, causal: bool) -> torch.Tensor:
    """The mean of channels-last tokens ``(B, T, H, W, C)`` over time at each position: ``(B, 1, H, W, C)``,
    or with ``causal`` the running mean over the frames up to each one, ``(B, T, H, W, C)``."""
    if not causal:
        return u.mean(1, keepdim=True)
    seen = torch.arange(1, u.shape[1] + 1, dtype=u.dtype, device=u.device).view(1, -1, 1, 1, 1)
    return u.cumsum(1) / seen


class TemporalContext(nn.Module):
    """The uniform part of temporal attention: every token gets ``W_c`` of the mean of its position's
    normalised inputs over the clip (``causal``: over the frames so far), so one block reaches every
    frame. Costs C^2 multiply-adds per position (per token when causal). Zero-initialised, so a fresh
    mixer is the mixer without it."""

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


# --------------------------------------------------------------------------------------------------
# Mixer, block, patch embedding and merging, stage
# --------------------------------------------------------------------------------------------------


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
    """The attention replacement: ``W_o( shift(W_v u) * (1 + g(u)) + b(u) [+ W_c mean_t(u)] )``.

    Costs 4 C^2 multiply-adds per token with the dynamic affine (as MHSA's four projections) and no
    token-by-token term; the shift itself is free.
    """

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


class AffineShiftBlock(nn.Module):
    """Pre-norm residual block: ``x + DropPath(mixer(norm(x)))``, then ``x + DropPath(MLP(norm(x)))``."""

    def __init__(
        self,
        dim: int,
        mixer: MixerConfig = MixerConfig(),
        mlp_ratio: float = 4.0,
        norm_layer: type[nn.Module] = ChannelsLastBatchNorm,
        proj_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.mixer = AffineShiftMixer(dim, mixer, proj_drop)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.mixer(self.norm1(x)))
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x

    @torch.jit.ignore
    def fuse(self) -> nn.Module:
        """The block rebuilt for inference (timm's ``reparameterize_model`` convention); see
        :class:`vast.deploy.FusedAffineShiftBlock`."""
        from vast.deploy.fuse import FusedAffineShiftBlock

        return FusedAffineShiftBlock(self)


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
        x = torch.cat(
            [x[:, :, 0::2, 0::2], x[:, :, 1::2, 0::2], x[:, :, 0::2, 1::2], x[:, :, 1::2, 1::2]], dim=-1
        )
        return self.reduction(self.norm(x))

    @torch.jit.ignore
    def fuse(self) -> nn.Module:
        """The merging rebuilt for inference (timm's ``reparameterize_model`` convention)."""
        from vast.deploy.fuse import FusedPatchMerging

        return FusedPatchMerging(self)


class AffineShiftStage(nn.Module):
    """Optional patch merging followed by ``depth`` Affine-Shift blocks (block ``i`` mixes with ``mixers[i]``)."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        depth: int,
        downsample: bool,
        drop_path: list[float],
        mixers: list[MixerConfig],
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = PatchMerging(dim, out_dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(
            *[AffineShiftBlock(out_dim, mixers[i], drop_path=drop_path[i], **block_kwargs) for i in range(depth)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


def _block_offsets(temporal_offsets: int | Sequence[int], blocks: int) -> list[int]:
    """Each block's temporal shift offset: one number for every block, or a schedule repeated over the
    blocks in depth order (``(1, 2)``: 1, 2, 1, 2, ...)."""
    schedule = list(temporal_offsets) if isinstance(temporal_offsets, (list, tuple)) else [temporal_offsets]
    if not schedule or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in schedule):
        raise ConfigError(
            f"temporal_offsets must be a number of frames >= 1 or a list of them (e.g. [1, 2]), "
            f"got {temporal_offsets!r}"
        )
    return [schedule[i % len(schedule)] for i in range(blocks)]



@torch.jit.ignore
def check_input_shape(x: torch.Tensor, name: str, in_chans: int, patch_size: int, t_patch: int, video: bool) -> None:
    """Raise :class:`InputShapeError` for an input the model cannot take (one clear line, not a
    traceback from deep inside a convolution). A leaf of FX graphs (``torch.fx.wrap``), so traced
    models check their input too."""
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


torch.fx.wrap("check_input_shape")


class AffineShiftTransformer(nn.Module):
    """AST (``video=False``, input ``(B, C, H, W)``) and VAST (``video=True``, input ``(B, C, T, H, W)``).

    Four stages of widths C, 2C, 4C, 8C at strides 4, 8, 16, 32; no position embedding, so any
    T divisible by ``t_patch`` and any H, W divisible by the patch size (4) are accepted (odd maps
    are zero-padded at patch merging, as in Swin).
    ``forward_features`` returns unpooled, normalised channels-last features: ``(B, H, W, C)`` for
    AST (timm's NHWC, as Swin) and ``(B, T, H, W, C)`` for VAST.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        video: bool = True,
        t_patch: int = 1,
        patch_size: int = 4,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        mlp_ratio: float = 4.0,
        norm: str = "batchnorm",
        affine: str = "dynamic",
        spatial_fraction: float = 1 / 3,
        temporal_fraction: float = 1 / 4,
        temporal_shift: bool = True,
        causal: bool = False,
        temporal_offsets: int | Sequence[int] = (1, 2),  # docs/study.md, "Temporal reach"
        temporal_context: bool = True,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if norm not in NORM_LAYERS:
            raise ConfigError(f"unknown norm {norm!r}; choose one of {', '.join(NORM_LAYERS)}")
        if global_pool not in ("avg", ""):
            raise ConfigError(f"global_pool must be 'avg' or '' (no pooling), got {global_pool!r}")
        if t_patch < 1 or (t_patch > 1 and not video):
            raise ConfigError(f"t_patch must be 1 for image models and >= 1 for video, got {t_patch}")
        self.num_classes = num_classes
        self._memory_lean: Any = None  # set_memory_lean's recompute hooks
        self.in_chans = in_chans
        self.video = video
        self.t_patch = t_patch
        self.patch_size = patch_size
        self.global_pool = global_pool
        self.output_fmt = "NHWC"  # timm: forward_features is channels-last
        num_stages = len(depths)
        widths = [embed_dim * 2**i for i in range(num_stages)]
        self.num_features = self.head_hidden_size = widths[-1]

        self.stem = PatchEmbed(in_chans, embed_dim, patch_size, t_patch, video)
        total = sum(depths)  # stochastic depth grows linearly with block index (plain floats: meta-safe)
        offsets = _block_offsets(temporal_offsets, total)
        # Images have T = 1: a temporal shift would only shift zeros in, so it is off for AST, and a mean
        # over one frame is no context.
        mixers = [
            MixerConfig(
                affine, spatial_fraction, temporal_fraction, temporal_shift and video, causal, offset,
                temporal_context and video,
            )
            for offset in offsets
        ]  # fmt: skip
        block_kwargs = dict(mlp_ratio=mlp_ratio, norm_layer=NORM_LAYERS[norm], proj_drop=proj_drop_rate)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages, self.feature_info, start = [], [], 0
        for i, depth in enumerate(depths):
            in_dim = widths[max(i - 1, 0)]
            stages.append(
                AffineShiftStage(
                    in_dim,
                    widths[i],
                    depth,
                    downsample=i > 0,
                    drop_path=rates[start : start + depth],
                    mixers=mixers[start : start + depth],
                    **block_kwargs,
                )
            )
            start += depth
            self.feature_info.append(
                dict(num_chs=widths[i], reduction=patch_size * 2**i, module=f"stages.{i}")
            )
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(self.num_features)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)
        for module in self.modules():
            if isinstance(module, (DynamicAffine, TemporalContext)):  # a fresh mixer is exactly a plain shift
                module.reset_parameters()

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    # ---- timm model API -------------------------------------------------------------------------

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameters kept out of weight decay beyond timm's rule for 1-D tensors: the affine maps."""
        return {name for name, _ in self.named_parameters() if ".mixer.affine." in name}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)"
            if coarse
            else [
                (r"^stages\.(\d+).downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_memory_lean(self, enable: bool = True) -> None:
        """Training memory: recompute the norm and GELU outputs in the backward pass instead of storing
        them (see :mod:`vast.ops.recompute`); every layer still runs its own forward. Off by default;
        the ``train.memory_lean`` recipe key turns it on. Eager training only: a compiled model
        recomputes on its own, and an exported model has no backward pass."""
        if self._memory_lean is not None:
            self._memory_lean.remove()
            self._memory_lean = None
        if enable:
            scopes = [m for m in self.modules() if isinstance(m, (AffineShiftBlock, PatchMerging))]
            self._memory_lean = ActivationRecompute(scopes)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's activation checkpointing per stage: stores only each block's input and recomputes
        the block in the backward pass (less memory than ``set_memory_lean``, one more forward pass)."""
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ConfigError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    @torch.jit.unused
    def _arch(self) -> str:
        return getattr(self, "pretrained_cfg", {}).get("architecture", type(self).__name__)

    @torch.jit.unused
    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`InputShapeError` for an input this model cannot take."""
        check_input_shape(x, self._arch, self.in_chans, self.patch_size, self.t_patch, self.video)

    def _tokens_to(self, x: torch.Tensor, output_fmt: str) -> torch.Tensor:
        """Channels-last tokens (B, T, H, W, C) to the requested feature layout."""
        if not self.video:
            x = x.squeeze(1)
            return x.permute(0, 3, 1, 2).contiguous() if output_fmt == "NCHW" else x
        return x.permute(0, 4, 1, 2, 3).contiguous() if output_fmt == "NCHW" else x

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Features of the stages in ``indices`` (timm's API).

        ``output_fmt="NCHW"`` gives channels-first maps, ``(B, C, H, W)`` for AST and
        ``(B, C, T, H, W)`` for VAST; ``"NHWC"`` gives them channels-last.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ConfigError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        if not torch.jit.is_scripting():
            check_input_shape(x, self._arch, self.in_chans, self.patch_size, self.t_patch, self.video)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        num_stages = len(self.stages)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[: max_index + 1]
        x = self.stem(x)
        last = 0
        for i, stage in enumerate(stages):
            x = stage(x)
            last = i
            if i in take_indices:
                feat = self.norm(x) if norm and i == num_stages - 1 else x
                intermediates.append(self._tokens_to(feat, output_fmt))
        if intermediates_only:
            return intermediates
        if last == num_stages - 1:
            x = self.norm(x)
        return self._tokens_to(x, "NHWC"), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages (and norm / head) that the requested intermediates do not need."""
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[: max_index + 1]
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices

    @torch.jit.ignore
    def fuse_for_inference(self) -> "AffineShiftTransformer":
        """Rebuild the model for fast inference, in place, with :func:`vast.deploy.fuse_for_inference`.

        The model must be in eval mode (BatchNorm statistics are folded into the weights); it computes
        the same function up to float rounding and cannot be trained afterwards. Returns ``self``.
        """
        from vast.deploy.fuse import fuse_for_inference

        return fuse_for_inference(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_input_shape(x, self._arch, self.in_chans, self.patch_size, self.t_patch, self.video)
        x = self.stem(x)
        x = self.stages(x)
        x = self.norm(x)
        return self._tokens_to(x, "NHWC")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = x.flatten(1, -2).mean(1)  # over (H, W) or (T, H, W), channels-last
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# --------------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------------

_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _inflate_patch_embedding(weight: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
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


def checkpoint_filter_fn(
    state_dict: dict[str, torch.Tensor], model: AffineShiftTransformer
) -> dict[str, torch.Tensor]:
    """Adapt a state dict to ``model``: strip DDP / torch.compile prefixes, inflate the patch embedding
    between AST and VAST (and between ``t_patch`` values), drop a classifier whose class count differs."""
    target = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if key == "stem.proj.weight" and key in target:
            value = _inflate_patch_embedding(value, target[key])
        if key.startswith("head.") and key in target and value.shape != target[key].shape:
            continue  # a different class count: keep the freshly initialised classifier
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------------
# Construction, default configs, entry points
# --------------------------------------------------------------------------------------------------


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    video = variant.startswith("vast_")
    depths = kwargs.get("depths", (2, 2, 6, 2))
    out_indices = kwargs.pop("out_indices", tuple(range(len(depths))))
    timm_cfg, own_cfg = _split_pretrained_cfg(kwargs.pop("pretrained_cfg", None) or default_cfgs[variant].default)
    try:
        model = build_model_with_cfg(
            AffineShiftTransformer,
            variant,
            pretrained,
            pretrained_filter_fn=checkpoint_filter_fn,
            feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
            video=video,
            pretrained_cfg=timm_cfg,
            **kwargs,
        )
    except TypeError as exc:
        raise _unknown_option_error(variant, exc) from exc
    if isinstance(model, AffineShiftTransformer):
        cfg = model.pretrained_cfg
        cfg.update(own_cfg)
        if video and len(cfg["input_size"]) == 3:
            # timm's config is image-shaped; the video input adds the frame count.
            channels, height, width = cfg["input_size"]
            frames = cfg.setdefault("num_frames", DEFAULT_NUM_FRAMES)
            cfg["input_size"] = (channels, frames, height, width)
    return model


_TIMM_CFG_FIELDS = frozenset(f.name for f in fields(PretrainedCfg))


def _split_pretrained_cfg(cfg: Any) -> tuple[Any, dict[str, Any]]:
    """A ``pretrained_cfg`` dict as timm takes it, and the keys set aside for the built model.

    timm turns a dict into its ``PretrainedCfg``, which refuses keys it does not know: vast's own
    (``num_frames``, ``frame_sampler``, ``frame_stride``, ``short_side`` in a packaged model's
    ``config.json``, :mod:`vast.deploy.package`) wait aside, and a video ``input_size`` (C, T, H, W)
    goes to timm as (C, H, W); both are put back on ``model.pretrained_cfg``.
    """
    if not isinstance(cfg, dict):
        return cfg, {}
    timm_cfg = {k: v for k, v in cfg.items() if k in _TIMM_CFG_FIELDS}
    own = {k: v for k, v in cfg.items() if k not in _TIMM_CFG_FIELDS}
    size = timm_cfg.get("input_size")
    if size is not None and len(size) == 4:
        own["input_size"] = tuple(size)
        timm_cfg["input_size"] = (size[0], *size[2:])
    return timm_cfg, own


def _unknown_option_error(variant: str, exc: TypeError) -> Exception:
    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if not match:
        return exc
    options = [p for p in inspect.signature(AffineShiftTransformer).parameters if p != "video"]
    close = difflib.get_close_matches(match.group(1), options, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"options: {', '.join(options)}"
    return ConfigError(f"{variant} has no option {match.group(1)!r}; {hint}")


def _cfg(video: bool, **kwargs: Any) -> dict[str, Any]:
    cfg = dict(
        url="",
        num_classes=400 if video else 1000,
        input_size=(3, 224, 224),  # VAST: plus DEFAULT_NUM_FRAMES frames, added by _create
        pool_size=(7, 7),
        crop_pct=0.875,
        interpolation="bicubic",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="stem.proj",
        classifier="head",
        license="apache-2.0",
        paper_ids="arXiv:2208.11108",
        paper_name="Efficient Attention-free Video Shift Transformers",
    )
    cfg.update(kwargs)
    return cfg


DEFAULT_NUM_FRAMES = 8

_VARIANTS = {  # name -> (embed_dim, depths)
    "nano": (32, (1, 1, 3, 1)),
    "tiny": (96, (2, 2, 6, 2)),
    "small": (96, (2, 2, 18, 2)),
    "base": (128, (2, 2, 18, 2)),
}

default_cfgs = generate_default_cfgs(
    {
        **{f"ast_{v}": _cfg(video=False) for v in _VARIANTS},
        **{f"vast_{v}": _cfg(video=True) for v in _VARIANTS},
    }
)


def _variant_kwargs(size: str, **kwargs: Any) -> dict[str, Any]:
    embed_dim, depths = _VARIANTS[size]
    drop_path = {"nano": 0.0, "tiny": 0.1, "small": 0.2, "base": 0.3}[size]
    return dict(dict(embed_dim=embed_dim, depths=depths, drop_path_rate=drop_path), **kwargs)


@register_model
@timm_register_model
def ast_nano(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """AST-Nano: C=32, depths (1, 1, 3, 1). For tests and CPU demos."""
    return _create("ast_nano", pretrained, **_variant_kwargs("nano", **kwargs))


@register_model
@timm_register_model
def ast_tiny(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """AST-Tiny: C=96, depths (2, 2, 6, 2) (Swin-T / ShiftViT-T class)."""
    return _create("ast_tiny", pretrained, **_variant_kwargs("tiny", **kwargs))


@register_model
@timm_register_model
def ast_small(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """AST-Small: C=96, depths (2, 2, 18, 2)."""
    return _create("ast_small", pretrained, **_variant_kwargs("small", **kwargs))


@register_model
@timm_register_model
def ast_base(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """AST-Base: C=128, depths (2, 2, 18, 2)."""
    return _create("ast_base", pretrained, **_variant_kwargs("base", **kwargs))


@register_model
def vast_nano(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """VAST-Nano: C=32, depths (1, 1, 3, 1). The CPU demo model."""
    return _create("vast_nano", pretrained, **_variant_kwargs("nano", **kwargs))


@register_model
def vast_tiny(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """VAST-Tiny: C=96, depths (2, 2, 6, 2). The main video model (8 x 224^2 by default)."""
    return _create("vast_tiny", pretrained, **_variant_kwargs("tiny", **kwargs))


@register_model
def vast_small(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """VAST-Small: C=96, depths (2, 2, 18, 2)."""
    return _create("vast_small", pretrained, **_variant_kwargs("small", **kwargs))


@register_model
def vast_base(pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    """VAST-Base: C=128, depths (2, 2, 18, 2)."""
    return _create("vast_base", pretrained, **_variant_kwargs("base", **kwargs))
