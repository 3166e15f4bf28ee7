"""A linear layer for inference whose weight is packed once for oneDNN on the CPU.

PyTorch's ``F.linear`` on the CPU calls the BLAS (MKL in the official wheels): the bias is copied into
the output first, the matmul adds to it, and a residual addition after it is one more pass over
memory. oneDNN's inner-product primitive takes the weight reordered once into its blocked layout and
applies the bias and a residual addition while the output is still in cache. MKL does not use its
AVX-512 kernels on AMD processors, so there oneDNN is also the faster matmul
(``benchmarks/bench_inference_forms.py`` times the fused model both ways on the machine at hand).

:class:`PackedLinear` keeps its weight and bias as buffers (the fused forms of the layers build it from
a trained model's linear layers, see :func:`vast.ops.fuse.fuse_for_inference`; it has no gradient) and
its packed copy as a plain attribute of the layer, made on first use and made again when the weight
changes (its version counter, data pointer or dtype). In TorchScript, tracing, FX, ``torch.export``
(and so ONNX), ``torch.compile`` (inductor packs weights itself), under a dispatch mode (the FLOP
counter), autocast, gradients and on other devices it computes the same function with ``F.linear``.

The oneDNN ops (``torch.ops.mkldnn._linear_pointwise`` and ``_reorder_linear_weight``) are the private
ones that inductor emits; a build without them uses ``F.linear``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

ACTIVATIONS = ("none", "gelu")


def onednn_linear_available() -> bool:
    """Whether this PyTorch build has the oneDNN linear ops used here."""
    ops = torch.ops.mkldnn
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(ops, "_linear_pointwise")
        and hasattr(ops, "_reorder_linear_weight")
    )


def _onednn_bf16() -> bool:
    """Whether oneDNN's bf16 matmuls run on this CPU (the packing op refuses bf16 elsewhere)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check is not None and check())


def _weight_state(weight: torch.Tensor) -> tuple[int, int, torch.dtype]:
    """What changes when a weight does: its version counter (in-place writes such as
    ``load_state_dict``), its data pointer (``.to()``, ``param.data = other``), its dtype."""
    try:
        version = weight._version
    except RuntimeError:  # an inference-mode tensor has no version counter and cannot change outside it
        version = -1
    return version, weight.data_ptr(), weight.dtype


def _eager_cpu_inference(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Plain eager inference on the CPU in fp32 / bf16: where the packed oneDNN path applies."""
    if torch.jit.is_tracing() or isinstance(x, torch.fx.Proxy) or torch.compiler.is_compiling():
        return False
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    if (is_exporting is not None and is_exporting()) or _get_current_dispatch_mode() is not None:
        return False
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.bfloat16) or x.dtype != weight.dtype:
        return False
    if x.dtype == torch.bfloat16 and not _onednn_bf16():
        return False  # oneDNN packs bf16 weights only on CPUs with AVX-512 (BW/VL/DQ) or AVX-NE-CONVERT
    if torch.is_autocast_enabled("cpu"):
        return False  # autocast picks the matmul dtype; F.linear follows it
    return not (torch.is_grad_enabled() and x.requires_grad)


class PackedLinear(nn.Module):
    """``activation(x @ weight.T + bias) [+ residual]`` over the last dimension of ``x``, for inference.

    With ``onednn=True`` (where the build has the ops) eager CPU inference runs as one oneDNN
    primitive on the packed weight, the residual addition included; GELU is a separate in-place pass
    over the matmul's output. Otherwise, and wherever a tracer or compiler runs, it is ``F.linear``.
    """

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, activation: str = "none", onednn: bool = True
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.activation = activation
        self.onednn = onednn and onednn_linear_available()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        self.packed: torch.Tensor | None = None
        self._packed_state: tuple[int, int, torch.dtype] | None = None

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if not torch.jit.is_scripting():  # noqa: SIM102 (TorchScript skips only this exact test)
            if self.onednn and _eager_cpu_inference(x, self.weight):
                return self._onednn(x, residual)
        y = F.linear(x, self.weight, self.bias)
        if self.activation == "gelu":
            y = F.gelu(y)
        return y if residual is None else y + residual

    @torch.jit.unused
    def packed_weight(self) -> torch.Tensor:
        """The weight in oneDNN's layout, packed again only when the weight has changed."""
        state = _weight_state(self.weight)
        if self.packed is None or self._packed_state != state:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight)
            self._packed_state = state
        return self.packed

    @torch.jit.unused
    def _onednn(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        packed = self.packed_weight()
        if residual is not None and self.activation == "none" and residual.dtype == x.dtype:
            other = residual.reshape(-1, self.out_features).contiguous()
            y = torch.ops.mkldnn._linear_pointwise.binary(flat, other, packed, self.bias, "add")
            return y.reshape(*x.shape[:-1], self.out_features)
        y = torch.ops.mkldnn._linear_pointwise(flat, packed, self.bias, "none", [], "")
        if self.activation == "gelu":
            y = torch.ops.aten.gelu_(y)  # in place: the matmul's fresh output, no second large buffer
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if residual is None else y + residual

    def __getstate__(self) -> dict:
        # The packed copy is an opaque oneDNN tensor (no storage to copy or pickle): made again on use.
        state = self.__dict__.copy()
        state["packed"] = state["_packed_state"] = None
        return state

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in={self.in_features}, out={self.out_features}, bias={bias}, activation={self.activation}"


def packed_bytes(model: nn.Module) -> int:
    """Bytes held now by the packed weight copies of ``model``'s :class:`PackedLinear` layers: the
    fused model's memory on top of its own weights."""
    total = 0
    for module in model.modules():
        if isinstance(module, PackedLinear) and module.packed is not None:
            total += module.packed.numel() * module.packed.element_size()
    return total
