"""An inference-only linear layer that runs on oneDNN on the CPU, with the activation or the residual
addition done inside the matmul.

PyTorch's ``F.linear`` on the CPU calls the BLAS (MKL in the official wheels): the bias is first copied
into the output, then the matmul adds to it, and an activation or residual addition after it is one
more pass over memory. oneDNN's inner-product primitive takes the weight once reordered into its
blocked layout and applies the bias, GELU or a residual addition as post-ops while the output is still
in cache. On the 2-core AMD EPYC (Zen 4) of docs/benchmarks.md it also reaches a higher matmul rate
than MKL, whose AVX-512 kernels are not used on AMD CPUs. This is what ``torch.compile`` does for
bf16 with frozen weights; for fp32 on x86 it keeps MKL.

Under ``torch.compile`` the layer is plain ``F.linear`` (+ GELU, + residual): the oneDNN ops cannot
run on Dynamo's fake tensors and each call would break the graph, while a whole graph lets inductor
fuse the element-wise work and, with ``freezing``, pack the weights itself.

The oneDNN ops (``torch.ops.mkldnn._linear_pointwise`` and ``_reorder_linear_weight``) are the
private ones inductor emits; where they are missing (a build without oneDNN, another device) the layer
falls back to ``F.linear``, so it computes the same function everywhere.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("none", "gelu")
# Below this many input features oneDNN's GELU post-op costs more than a separate GELU pass: measured on
# the 2-core Zen 4 of docs/benchmarks.md, 12544 x 96 -> 384 takes 10.5 ms fused and 6.5 ms as a matmul
# then F.gelu, while from 192 inputs up the post-op is the faster one (4.9 against 5.1 ms at 192 -> 768).
MIN_FEATURES_FOR_GELU_POST_OP = 128


def onednn_linear_available() -> bool:
    """Whether this PyTorch build has the oneDNN linear ops used by :class:`PackedLinear`."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_linear_pointwise")
        and hasattr(ops, "_reorder_linear_weight")
    )


class PackedLinear(nn.Module):
    """``activation(x @ weight.T + bias) [+ residual]`` over the last dimension of ``x``, for inference.

    ``weight`` and ``bias`` are kept as buffers (no gradients: this layer is built by
    ``fuse_for_inference`` from a trained model). On the CPU with oneDNN, the weight is reordered once
    per dtype into oneDNN's layout and the whole expression is one primitive.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.activation = activation
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self._packed: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self._onednn(x, residual):
            return self._forward_onednn(x, residual)
        y = F.linear(x, self.weight, self.bias)
        if self.activation == "gelu":
            y = F.gelu(y)
        return y if residual is None else y + residual

    def _onednn(self, x: torch.Tensor, residual: torch.Tensor | None) -> bool:
        if isinstance(x, torch.fx.Proxy) or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return False
        if x.device.type != "cpu" or x.requires_grad or not onednn_linear_available():
            return False
        if x.dtype not in (torch.float32, torch.bfloat16) or x.dtype != self.weight.dtype:
            return False
        return residual is None or (residual.is_contiguous() and self.activation == "none")

    def _forward_onednn(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        weight = self._packed_weight(x.device, x.dtype)
        if residual is not None:
            other = residual.reshape(-1, self.out_features)
            y = torch.ops.mkldnn._linear_pointwise.binary(flat, other, weight, self.bias, "add")
        elif self.activation == "gelu" and self.in_features >= MIN_FEATURES_FOR_GELU_POST_OP:
            y = torch.ops.mkldnn._linear_pointwise(flat, weight, self.bias, "gelu", [], "none")
        elif self.activation == "gelu":
            y = torch.ops.mkldnn._linear_pointwise(flat, weight, self.bias, "none", [], "")
            y = torch.ops.aten.gelu_(y)  # in place: the matmul's fresh output, no second large buffer
        else:
            y = torch.ops.mkldnn._linear_pointwise(flat, weight, self.bias, "none", [], "")
        return y.reshape(*x.shape[:-1], self.out_features)

    def _packed_weight(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (device, dtype)
        if key not in self._packed:
            self._packed[key] = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach())
        return self._packed[key]

    def _apply(self, fn: Any, recurse: bool = True) -> PackedLinear:
        self._packed = {}  # moved or cast: pack again on the next call
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_packed"] = {}  # oneDNN's opaque tensors cannot be copied or pickled
        return state

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in={self.in_features}, out={self.out_features}, bias={bias}, activation={self.activation}"
