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

The layers (norms, affines, the shift and its plan, the temporal context, the mixer, patch embedding
and merging) are in :mod:`vast.ops`, each beside its inference form. Every layer is a plain PyTorch
layer that runs its own forward in every mode (eager, no_grad, tracing, scripting, export), so hooks,
parametrizations and wrappers see the real model. Speed-ups are separate, explicit steps:
``fuse_for_inference`` (:mod:`vast.ops.fuse`) for inference and ``set_memory_lean``
(:mod:`vast.ops.recompute`) for training memory.

File order follows timm: blocks, model, ``checkpoint_filter_fn``, ``_create``, ``default_cfgs``,
registered entry points.
"""

from collections.abc import Sequence
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models import checkpoint_seq, generate_default_cfgs
from timm.models import register_model as timm_register_model
from timm.models._features import feature_take_indices
from torch import nn

from vast.errors import ConfigError
from vast.models.builder import build_model
from vast.models.registry import register_model
from vast.ops.affine import DynamicAffine, StaticAffine  # noqa: F401 (StaticAffine: importable from here, as before)
from vast.ops.context import TemporalContext
from vast.ops.fuse import InferenceOnly, fuse_for_inference, require_eval
from vast.ops.mixer import AffineShiftMixer, FusedAffineShiftMixer, MixerConfig
from vast.ops.norm import NORM_LAYERS, ChannelsLastBatchNorm, ChannelsLastGroupNorm, fold_norm, foldable  # noqa: F401
from vast.ops.packed_linear import PackedLinear
from vast.ops.patch import PatchEmbed, PatchMerging, check_input_shape, inflate_patch_kernel
from vast.ops.recompute import ActivationRecompute
from vast.ops.shift import block_offsets

__all__ = [
    "AffineShiftBlock",
    "AffineShiftTransformer",
    "FusedAffineShiftBlock",
    "checkpoint_filter_fn",
]


# --------------------------------------------------------------------------------------------------
# Block and stage
# --------------------------------------------------------------------------------------------------


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
        """The block rebuilt for inference (timm's ``reparameterize_model`` convention)."""
        return FusedAffineShiftBlock(self)


class FusedAffineShiftBlock(InferenceOnly):
    """:class:`AffineShiftBlock` rebuilt for inference (:mod:`vast.ops.fuse`): its BatchNorms folded into
    the projections after them, the mixer fused, the MLP on packed weights, and both residual additions
    inside the matmuls that end each branch."""

    def __init__(self, block: AffineShiftBlock) -> None:
        super().__init__()
        require_eval(block)
        norm1, norm2 = foldable(block.norm1), foldable(block.norm2)
        self.norm1 = nn.Identity() if norm1 is not None else block.norm1
        self.mixer = FusedAffineShiftMixer(block.mixer, norm1)
        self.norm2 = nn.Identity() if norm2 is not None else block.norm2
        self.fc1 = PackedLinear(*fold_norm(block.mlp.fc1, norm2), activation="gelu")
        self.fc2 = PackedLinear(block.mlp.fc2.weight, block.mlp.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mixer(self.norm1(x), x)
        return self.fc2(self.fc1(self.norm2(x)), x)


class AffineShiftStage(nn.Module):
    """Optional patch merging followed by one Affine-Shift block per entry of ``mixers`` (block ``i`` mixes
    with ``mixers[i]`` and drops its path at rate ``drop_path[i]``)."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        downsample: bool,
        drop_path: list[float],
        mixers: list[MixerConfig],
        **block_kwargs: Any,
    ) -> None:
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = PatchMerging(dim, out_dim) if downsample else nn.Identity()
        blocks = [AffineShiftBlock(out_dim, m, drop_path=rate, **block_kwargs) for m, rate in zip(mixers, drop_path)]
        self.blocks = nn.Sequential(*blocks)

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


torch.fx.wrap("check_input_shape")  # a leaf of FX graphs: traced models check their input too


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
        offsets = block_offsets(temporal_offsets, total)
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
            here = slice(start, start + depth)
            stage = AffineShiftStage(widths[max(i - 1, 0)], widths[i], i > 0, rates[here], mixers[here], **block_kwargs)
            stages.append(stage)
            self.feature_info.append(dict(num_chs=widths[i], reduction=patch_size * 2**i, module=f"stages.{i}"))
            start += depth
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
        """Rebuild the model for fast inference, in place, with :func:`vast.ops.fuse.fuse_for_inference`.

        The model must be in eval mode (BatchNorm statistics are folded into the weights); it computes
        the same function up to float rounding and cannot be trained afterwards. Returns ``self``.
        """
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


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: AffineShiftTransformer) -> dict[str, torch.Tensor]:
    """Adapt a state dict to ``model``: strip DDP / torch.compile prefixes, inflate the patch embedding
    between AST and VAST (and between ``t_patch`` values), drop a classifier whose class count differs."""
    target = model.state_dict()
    out = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        if key == "stem.proj.weight" and key in target:
            value = inflate_patch_kernel(value, target[key])
        if key.startswith("head.") and key in target and value.shape != target[key].shape:
            continue  # a different class count: keep the freshly initialised classifier
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------------
# Construction, default configs, entry points
# --------------------------------------------------------------------------------------------------


def _create(variant: str, pretrained: bool = False, **kwargs: Any) -> AffineShiftTransformer:
    out_indices = kwargs.pop("out_indices", tuple(range(len(kwargs.get("depths", (2, 2, 6, 2))))))
    return build_model(
        AffineShiftTransformer,
        variant,
        pretrained,
        default_cfgs[variant].default,
        video=variant.startswith("vast_"),
        num_frames=DEFAULT_NUM_FRAMES,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs,
    )


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


# Closing note on length: about 520 lines, one concept, the AST / VAST family in timm's file order. The
# model class is half of it (timm's model API: features, intermediates, pruning, classifier, grad
# checkpointing, memory-lean, fusion); the layers themselves are in vast.ops.
