"""Linear layers that run inference on oneDNN on the CPU, with the weight packed once.

PyTorch's ``F.linear`` on the CPU calls the BLAS (MKL in the official wheels): the bias is first copied
into the output, then the matmul adds to it, and an activation or residual addition after it is one
more pass over memory. oneDNN's inner-product primitive takes the weight once reordered into its
blocked layout and applies the bias, GELU or a residual addition as post-ops while the output is still
in cache. MKL does not use its AVX-512 kernels on AMD processors, so there oneDNN is also the faster
matmul: 1.16x MKL's rate on the Zen 4 and 2.3x on the Zen 5 of docs/benchmarks.md. ``torch.compile``
emits the same oneDNN ops for bf16 with frozen weights; for fp32 on x86 it keeps MKL.

* :class:`Linear` is ``nn.Linear`` (same parameters, initialisation and state dict) whose forward takes
  oneDNN whenever no gradient is needed (``torch.no_grad``/``inference_mode``, or frozen weights and
  input) on the CPU in fp32 or bf16; it is ``F.linear`` otherwise, so training is unchanged.
* :class:`PackedLinear` is the inference-only layer of ``fuse_for_inference``: weights as buffers,
  GELU and the residual addition inside the matmul.

:func:`set_onednn_linear` turns the oneDNN path off (and on again) for the whole process.

Packed weights are kept in one process-wide cache keyed by the weight tensor itself, its version
counter, data pointer and dtype: a weight changed in place (an optimiser step, ``load_state_dict``) or
given new data is packed again on its next use, ``train()`` and ``eval()`` drop a layer's copy, and an
entry goes when its weight is freed. The one change it cannot see is an in-place write through
``weight.data`` between two inference passes without an ``eval()`` in between.

Under ``torch.compile`` the layers call the custom op ``vast::onednn_linear``, which inductor keeps as
one call while it fuses the element-wise work around it. In TorchScript, tracing, FX, ``torch.export``
(and so ONNX), the FLOP counter, under autocast and on other devices the layers are plain ``F.linear``
(+ GELU, + residual), which computes the same function.

The oneDNN ops (``torch.ops.mkldnn._linear_pointwise`` and ``_reorder_linear_weight``) are the private
ones inductor emits; a build without them falls back to ``F.linear``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

ACTIVATIONS = ("none", "gelu")
# Below this many input features oneDNN's GELU post-op costs more than a separate GELU pass: measured on
# the 2-core Zen 4 of docs/benchmarks.md, 12544 x 96 -> 384 takes 10.5 ms fused and 6.5 ms as a matmul
# then F.gelu, while from 192 inputs up the post-op is the faster one (4.9 against 5.1 ms at 192 -> 768).
# On the Zen 5 the post-op wins at 96 inputs too (4.7 against 5.8 ms for 25088 x 96 -> 384): this
# threshold keeps the Zen 4's choice, which costs the Zen 5 about 1 % of vast_tiny's fused forward.
MIN_FEATURES_FOR_GELU_POST_OP = 128

# id(weight) -> (weak reference to the weight, (version, data pointer, dtype), packed weight)
_PACKED: dict[int, tuple[weakref.ref, tuple[int, int, torch.dtype], torch.Tensor]] = {}


def onednn_linear_available() -> bool:
    """Whether this PyTorch build has the oneDNN linear ops used here."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_linear_pointwise")
        and hasattr(ops, "_reorder_linear_weight")
    )


_ENABLED = onednn_linear_available()


def set_onednn_linear(enable: bool = True) -> None:
    """Turn the oneDNN inference path on (the default where the build has it) or off process-wide;
    off, every layer here is plain ``F.linear`` (+ GELU, + residual). Like timm's ``set_fused_attn``."""
    global _ENABLED
    _ENABLED = bool(enable) and onednn_linear_available()


def onednn_linear_enabled() -> bool:
    return _ENABLED


def _state(weight: torch.Tensor) -> tuple[int, int, torch.dtype]:
    """What changes when a weight does: its version counter (in-place writes: optimiser steps,
    ``load_state_dict``), its data pointer (``param.data = other``, which keeps the counter), its dtype."""
    try:
        version = weight._version
    except RuntimeError:  # an inference-mode tensor has no version counter and cannot change outside it
        version = -1
    return version, weight.data_ptr(), weight.dtype


def packed_weight(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` reordered into oneDNN's layout, from the cache while the weight is unchanged."""
    key, state = id(weight), _state(weight)
    entry = _PACKED.get(key)
    if entry is not None and entry[0]() is weight and entry[1] == state:
        return entry[2]
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach())
    _PACKED[key] = (weakref.ref(weight, lambda _, key=key: _PACKED.pop(key, None)), state, packed)
    return packed


def packed_bytes(weights: Iterable[torch.Tensor]) -> int:
    """Bytes held now by the packed copies of ``weights``: the oneDNN path's memory on top of a model's
    own (one more copy of every projection weight that has run in inference)."""
    total = 0
    for weight in weights:
        entry = _PACKED.get(id(weight))
        if entry is not None and entry[0]() is weight:
            total += entry[2].numel() * entry[2].element_size()
    return total


def forget_packed(weight: torch.Tensor) -> None:
    """Drop the packed copy of ``weight`` (its memory), e.g. when its layer goes back to training."""
    entry = _PACKED.get(id(weight))
    if entry is not None and entry[0]() is weight:
        del _PACKED[id(weight)]


def _onednn_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    activation: str,
) -> torch.Tensor:
    """``activation(x @ weight.T + bias) [+ residual]`` on oneDNN (CPU, fp32/bf16, no autograd)."""
    out_features, in_features = weight.shape
    flat = x.reshape(-1, in_features)
    packed = packed_weight(weight)
    if residual is not None:
        other = residual.reshape(-1, out_features)
        y = torch.ops.mkldnn._linear_pointwise.binary(flat, other, packed, bias, "add")
    elif activation == "gelu" and in_features >= MIN_FEATURES_FOR_GELU_POST_OP:
        y = torch.ops.mkldnn._linear_pointwise(flat, packed, bias, "gelu", [], "none")
    else:
        y = torch.ops.mkldnn._linear_pointwise(flat, packed, bias, "none", [], "")
        if activation == "gelu":
            y = torch.ops.aten.gelu_(y)  # in place: the matmul's fresh output, no second large buffer
    return y.reshape(*x.shape[:-1], out_features)


# The same function as an operator that torch.compile keeps as one opaque call (eager code calls the
# Python function directly: no dispatcher round trip).
onednn_linear = torch.library.custom_op("vast::onednn_linear", _onednn_linear, mutates_args=())


@onednn_linear.register_fake
def _(x, weight, bias, residual, activation):  # the output's shape and dtype, for torch.compile
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return bool(is_exporting and is_exporting())


def use_onednn(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, residual: torch.Tensor | None = None
) -> bool:
    """Whether ``linear(x, weight, bias) [+ residual]`` can run on oneDNN: CPU, fp32/bf16, no autograd,
    no autocast, and not inside a tracer that needs portable ops."""
    if not _ENABLED or isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing() or _exporting():
        return False
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16) or x.dtype != weight.dtype:
        return False
    tensors = (x, weight, bias, residual)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return False
    if torch.is_autocast_enabled("cpu"):
        return False  # autocast picks the matmul dtype; F.linear follows it
    return residual is None or (residual.is_contiguous() and residual.dtype == x.dtype)


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    activation: str = "none",
) -> torch.Tensor:
    """``activation(F.linear(x, weight, bias)) [+ residual]``, on oneDNN where :func:`use_onednn`
    allows (the GELU and the residual addition are not combined in one call)."""
    if residual is not None and activation != "none":
        raise ValueError("a residual addition goes with activation='none'")
    if use_onednn(x, weight, bias, residual):
        if torch.compiler.is_compiling():
            return onednn_linear(x, weight, bias, residual, activation)
        if _get_current_dispatch_mode() is None:  # a dispatch mode (the FLOP counter) sees only aten ops
            return _onednn_linear(x, weight, bias, residual, activation)
    y = F.linear(x, weight, bias)
    if activation == "gelu":
        y = F.gelu(y)
    return y if residual is None else y + residual


class Linear(nn.Linear):
    """``nn.Linear`` whose inference on the CPU runs on oneDNN (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():  # TorchScript compiles only the F.linear line
            return self._forward_any(x)
        return F.linear(x, self.weight, self.bias)

    @torch.jit.unused
    def _forward_any(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

    def train(self, mode: bool = True) -> Linear:
        # Training changes the weight every step: no copy is kept. eval() packs afresh on the next pass,
        # which also picks up an in-place change made through ``.data`` (that bypasses the version counter).
        forget_packed(self.weight)
        return super().train(mode)


class PackedLinear(nn.Module):
    """``activation(x @ weight.T + bias) [+ residual]`` over the last dimension of ``x``, for inference.

    ``weight`` and ``bias`` are kept as buffers (no gradients: this layer is built by
    ``fuse_for_inference`` from a trained model). On the CPU with oneDNN the whole expression is one
    primitive on the packed weight.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.activation = activation
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is not None and self.activation != "none":  # not produced by fuse_for_inference
            return linear(x, self.weight, self.bias, activation=self.activation) + residual
        return linear(x, self.weight, self.bias, residual, self.activation)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in={self.in_features}, out={self.out_features}, bias={bias}, activation={self.activation}"
