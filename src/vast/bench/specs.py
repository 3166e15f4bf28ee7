"""What one row of a benchmark is: a model (with options) at one input, parsed from ``MODEL[:KEY=VALUE,...]``;
the default rows, the torchvision peers and their inputs; the model and the input a row runs."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vast.deploy import fuse_for_inference
from vast.errors import ConfigError, InputShapeError, UnknownModelError
from vast.models import create_model, list_models
from vast.models.peers import STUDY_PEERS

TORCHVISION_PEERS = ("swin3d_t", "mvit_v2_s", "r2plus1d_18", "s3d")
COMMON_INPUT = (1, 3, 8, 224, 224)
# As trained, as deployed (``fuse_for_inference``), and as deployed at about swin3d_t's compute.
DEFAULT_MODELS = ("vast_tiny", "vast_tiny:fused=True", "vast_tiny:t_patch=2,fused=True")


@dataclass(frozen=True)
class ModelSpec:
    """One row of a benchmark: a model (with options) at one input.

    ``name`` is a VAST model (``vast_tiny``) or a torchvision video model (``swin3d_t``); ``options`` are
    VAST constructor options (``t_patch=2``); ``input_shape`` is one clip, ``(1, 3, T, H, W)``; ``note``
    says where the input comes from (``common``, ``weights``).
    """

    name: str
    input_shape: tuple[int, ...]
    options: tuple[tuple[str, Any], ...] = ()
    note: str = ""

    @property
    def in_registry(self) -> bool:
        """Built by ``vast.create_model`` (VAST and the study's peers), not by torchvision."""
        return self.name in list_models()

    @property
    def is_vast(self) -> bool:
        """An Affine-Shift model (its token shifts can be timed, it can be fused)."""
        return self.in_registry and self.name not in STUDY_PEERS

    @property
    def fused(self) -> bool:
        """A VAST model rebuilt with ``fuse_for_inference`` (option ``fused=True``): inference only."""
        return bool(dict(self.options).get("fused", False))

    @property
    def unfused(self) -> ModelSpec:
        """The same row without ``fused`` (the trained model: its params and GMACs)."""
        options = tuple((k, v) for k, v in self.options if k not in ("fused", "onednn"))
        return dataclasses.replace(self, options=options)

    @property
    def model_label(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.options)

    @property
    def input_label(self) -> str:
        return "x".join(str(d) for d in self.input_shape[2:])

    @property
    def key(self) -> str:
        return f"{self.model_label} @ {self.input_label}"


# --------------------------------------------------------------------------------------------------
# Names and inputs
# --------------------------------------------------------------------------------------------------


def peer_names() -> list[str]:
    """The torchvision video models that can be benchmarked by name."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.video))


def parse_model_arg(text: str) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """``"vast_tiny:t_patch=2,norm=layernorm"`` -> ``("vast_tiny", (("t_patch", 2), ("norm", "layernorm")))``.

    Raises :class:`UnknownModelError` for a name that is neither a VAST nor a torchvision video model.
    """
    name, _, rest = text.partition(":")
    known = list_models() + peer_names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise UnknownModelError(f"unknown model {name!r}; {hint}")
    items = re.split(r",(?![^\[\(]*[\]\)])", rest)  # commas inside [...] or (...) belong to a value
    return name, tuple(_parse_option(name, item, text) for item in filter(None, items))


def _parse_option(name: str, item: str, text: str) -> tuple[str, Any]:
    """``"t_patch=2"`` -> ``("t_patch", 2)``: a Python literal where the value is one, else the string."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"model options are KEY=VALUE, got {item!r} in {text!r}; e.g. vast_tiny:t_patch=2")
    if name not in list_models():
        raise ConfigError(f"options ({item!r}) apply to VAST models only, not to {name}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value
    return key, tuple(parsed) if isinstance(parsed, list) else parsed  # hashable, as a spec must be


def weights_input(name: str) -> tuple[int, ...]:
    """The clip a torchvision video model's default weights were evaluated with, ``(1, 3, T, S, S)``.

    The crop size comes from the weights' eval transforms and the clip length from their documented
    ``clip_len`` (falling back to ``min_temporal_size``); nothing is downloaded.
    """
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    crop = weights.transforms().crop_size
    match = re.search(r"clip_len=(\d+)", weights.meta.get("_docs", ""))
    frames = int(match.group(1)) if match else int(weights.meta.get("min_temporal_size", COMMON_INPUT[2]))
    return (1, 3, frames, int(crop[0]), int(crop[-1]))


def _accepts(name: str, shape: tuple[int, ...]) -> bool:
    """Whether the torchvision model ``name`` runs on ``shape`` (tried on the meta device)."""
    try:
        with torch.device("meta"):
            model = build_module(ModelSpec(name, shape)).eval()
            with torch.no_grad():
                model(torch.empty(shape))
    except (RuntimeError, ValueError, AssertionError):
        return False
    return True


def common_input(name: str, shape: tuple[int, ...] = COMMON_INPUT) -> tuple[int, ...]:
    """``shape``, or for a model that cannot take it the same clip with 2x, 4x ... the frames
    (``mvit_v2_s`` needs 16 frames, ``s3d`` at least 14)."""
    for factor in (1, 2, 4, 8):
        candidate = (*shape[:2], shape[2] * factor, *shape[3:])
        if _accepts(name, candidate):
            return candidate
    raise InputShapeError(f"{name} accepts none of the clips {shape} with 1x to 8x the frames")


def default_specs(
    models: Sequence[str] = (), peers: bool = False, shape: tuple[int, ...] = COMMON_INPUT, quick: bool = False
) -> list[ModelSpec]:
    """The rows of ``vast bench``: ``models`` (default :data:`DEFAULT_MODELS`) at ``shape`` and, with
    ``peers``, every peer at ``shape`` (or the nearest clip it accepts) and at its weights' input
    (unless ``quick``)."""
    specs = []
    for text in models or DEFAULT_MODELS:
        name, options = parse_model_arg(text)
        note = "common" if name in list_models() else "given"
        specs.append(ModelSpec(name, shape, options, note))
    if peers:
        specs += [spec for name in TORCHVISION_PEERS for spec in _peer_specs(name, shape, quick)]
    return specs


def _peer_specs(name: str, shape: tuple[int, ...], quick: bool) -> list[ModelSpec]:
    """A peer at ``shape`` (or the nearest clip it accepts) and, unless ``quick``, at its weights' input."""
    common = common_input(name, shape)
    specs = [ModelSpec(name, common, (), "common" if common == shape else "nearest accepted")]
    native = weights_input(name)
    if not quick and native != common:
        specs.append(ModelSpec(name, native, (), "weights"))
    return specs


# --------------------------------------------------------------------------------------------------
# The model and the input of a row
# --------------------------------------------------------------------------------------------------


def build_module(spec: ModelSpec) -> nn.Module:
    """The freshly initialised model of ``spec`` (400 classes) on torch's current default device; a
    ``fused=True`` VAST row is the model after :func:`vast.deploy.fuse_for_inference` (with
    ``onednn=False``, its projections on ``F.linear``)."""
    if spec.in_registry:
        options = dict(spec.options)
        fused, onednn = bool(options.pop("fused", False)), bool(options.pop("onednn", True))
        model = create_model(spec.name, num_classes=400, **options)
        return fuse_for_inference(model.eval(), onednn=onednn) if fused else model
    import torchvision

    return torchvision.models.get_model(spec.name, weights=None, num_classes=400)


def on_blas(spec: ModelSpec) -> ModelSpec:
    """A fused VAST row with its projections on ``F.linear`` (``vast bench --blas``); others as they are."""
    if not spec.fused:
        return spec
    return dataclasses.replace(spec, options=(*spec.options, ("onednn", False)))


def meta_model(spec: ModelSpec) -> nn.Module:
    """The model of ``spec`` on the ``meta`` device: shapes without memory, for counting GMACs."""
    with torch.device("meta"):
        return build_module(spec)


def build_model(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype = torch.float32, channels_last: bool = False
) -> nn.Module:
    """The model of ``spec`` in eval mode on ``device`` / ``dtype``; ``channels_last`` stores its 5-D
    (Conv3d) weights channels-last (NDHWC)."""
    model = build_module(spec).to(device=device, dtype=dtype).eval()
    return model.to(memory_format=torch.channels_last_3d) if channels_last else model


def make_input(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype = torch.float32, batch: int = 1,
    channels_last: bool = False,
) -> torch.Tensor:  # fmt: skip
    """A seeded random input of ``batch`` clips of ``spec``'s shape (channels-last if asked)."""
    x = torch.randn((batch, *spec.input_shape[1:]), generator=torch.Generator().manual_seed(0))
    x = x.to(device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
