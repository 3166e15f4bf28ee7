"""Int8 inference: post-training quantisation of a trained model, an explicit step like
:func:`vast.ops.fuse.fuse_for_inference`.

The stack is torchao's PT2E flow: ``torch.export`` captures the model (AST / VAST: a copy fused for
inference on plain matmuls, BatchNorm folded into the projections), torchao's
``X86InductorQuantizer`` marks its projections (every ``Linear``; int8 weights per output channel,
int8 activations per tensor), observers record activation ranges (``static``) or the ranges are taken
per batch at run time (``dynamic``), ``convert_pt2e`` writes the quantise / dequantise pairs, and
inductor (``torch.compile`` with frozen weights) lowers each pair and its matmul to one oneDNN int8
kernel. The shift, the affine, the norms and the temporal context are not quantised: they stay fp32,
so the block's token mixing is exact and only the matmuls round. ``benchmarks/bench_quantize.py``
measures this stack beside ONNX Runtime's and PyTorch's eager dynamic quantisation.

``compile=False`` keeps the converted graph in eager mode: each int8 matmul then runs as dequantise,
fp32 matmul, quantise, which gives the int8 model's numbers (to fp32 rounding) without the compile
time, for accuracy checks.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch._inductor import config as inductor_config

from vast.errors import CheckpointError, ConfigError, InputShapeError
from vast.ops.fuse import InferenceOnly, fuse_for_inference
from vast.ops.packed_linear import PackedLinear

_logger = logging.getLogger(__name__)

MODES = ("dynamic", "static")
STACK = "torchao-pt2e-x86-inductor"
QUANTIZED_FILE = "model-int8.pt2"  # a model folder's int8 program (torch.export.save)


@dataclass(frozen=True)
class QuantizationInfo:
    """How a model was quantised: written into a model folder's ``config.json`` and benchmark tables."""

    mode: str
    stack: str = STACK
    calibration_clips: int = 0
    weights: str = "int8, symmetric, per output channel"
    activations: str = "int8, per tensor"
    reduce_range: bool = False  # activations in 0..127: CPUs without VNNI add u8 x s8 pairs in 16 bits

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class QuantizedModel(InferenceOnly):
    """A quantised model: the converted (and usually compiled) graph of one clip shape, any batch size.

    ``input_shape`` is the ``(C, T, H, W)`` it was captured at; a clip of another shape is refused
    with a one-line error (quantise again at that shape). ``info`` says how it was quantised.
    """

    def __init__(self, graph: nn.Module, info: QuantizationInfo, input_shape: tuple[int, ...], compiled: bool) -> None:
        super().__init__()
        self.graph = graph
        self.info = info
        self.input_shape = tuple(input_shape)
        self.compiled = compiled
        self.runner = torch.compile(graph) if compiled else graph
        self.training = False

    def train(self, mode: bool = True) -> QuantizedModel:
        # An exported graph refuses train() / eval() itself; this model is always in eval mode.
        if mode:
            raise RuntimeError("an int8 model cannot be trained; quantise a model trained in fp32 (vast.create_model)")
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != len(self.input_shape) + 1 or tuple(x.shape[1:]) != self.input_shape:
            raise InputShapeError(
                f"this int8 model was quantised for clips of shape {self.input_shape} (C, T, H, W), "
                f"got {tuple(x.shape)}; quantise again with an example of that shape"
            )
        # freezing: inductor folds the int8 weights and packs them for oneDNN once, which its int8 matmuls
        # need. Set as a config patch, not torch.compile(options=...), which fails to lower them here.
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return self.runner(x)

    def weight_bytes(self) -> int:
        """Bytes of the constants the graph reads: int8 weights, their scales, the fp32 rest."""
        return graph_weight_bytes(self.graph)


def graph_weight_bytes(graph: torch.fx.GraphModule) -> int:
    """Bytes of the constants a converted graph reads (each tensor once)."""
    tensors = {}
    for name in _read_constants(graph):
        value = graph
        for part in name.split("."):
            value = getattr(value, part)
        if isinstance(value, torch.Tensor):
            tensors[id(value)] = value
    return sum(t.numel() * t.element_size() for t in tensors.values())


def save_quantized(quantized: QuantizedModel, path: str | Path) -> Path:
    """Write the int8 graph as a ``torch.export`` program (any batch size, its clip shape)."""
    path = Path(path)
    example = torch.zeros((2, *quantized.input_shape))
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(quantized.graph, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    return path


# Int8 dot-product instructions. Without them oneDNN multiplies u8 by s8 with AVX2 / AVX-512 pair
# sums in 16 bits, which full-range activations can saturate.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_has_vnni() -> bool:
    """Whether this CPU has VNNI or AMX int8 instructions (from ``/proc/cpuinfo``; ``False`` where it cannot
    be read, so that the safe 7-bit activation range is chosen)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in VNNI_FLAGS)


def load_quantized(path: str | Path, record: dict[str, Any], compile: bool = True) -> QuantizedModel:
    """The int8 model that :func:`save_quantized` wrote, with ``record`` (``info`` and ``input_shape``,
    as a model folder's ``config.json`` keeps them)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} not found: the folder says it is quantised; export it again with --quantize")
    fields = {key: record[key] for key in QuantizationInfo.__dataclass_fields__ if key in record}
    graph = torch.export.load(str(path)).module()
    info = QuantizationInfo(**fields)
    if not info.reduce_range and not cpu_has_vnni():
        _logger.warning(
            "%s was quantised with 8-bit activations, which this CPU's int8 matmuls (no VNNI) can saturate; "
            "quantise the model again on this machine", path
        )
    return QuantizedModel(graph, info, tuple(record["input_shape"]), compiled=compile)


def quantization_record(quantized: QuantizedModel) -> dict[str, Any]:
    """What a model folder's ``config.json`` says of its int8 program."""
    return {**quantized.info.to_dict(), "input_shape": list(quantized.input_shape), "file": QUANTIZED_FILE}


def describe_form(model: nn.Module) -> str:
    """How ``model`` computes, for reports: ``fp32``, or how it was quantised."""
    if not isinstance(model, QuantizedModel):
        return "fp32"
    info = model.info
    calibrated = f", calibrated on {info.calibration_clips} clips" if info.mode == "static" else ""
    reduced = ", 7-bit activations" if info.reduce_range else ""
    return f"int8 {info.mode} ({info.stack}{calibrated}{reduced})"


def form_name(model: nn.Module) -> str:
    """``fp32``, ``int8-dynamic`` or ``int8-static``: report file names keep the forms apart."""
    return f"int8-{model.info.mode}" if isinstance(model, QuantizedModel) else "fp32"


def _read_constants(graph: torch.fx.GraphModule) -> set[str]:
    return {str(node.target) for node in graph.graph.nodes if node.op == "get_attr"}


def _drop_unused_constants(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Delete the fp32 weights that conversion replaced by int8 constants but left on the module, so that
    the int8 model does not hold both."""
    used = _read_constants(graph)
    for name, _ in [*graph.named_parameters(), *graph.named_buffers()]:
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(graph.get_submodule(owner) if owner else graph, attr)
    return graph


def calibration_batches(calibration: Iterable[Any]) -> Iterable[torch.Tensor]:
    """The clip batches of ``calibration``: tensors, or (clips, labels) pairs as a DataLoader yields."""
    for item in calibration:
        yield item[0] if isinstance(item, (tuple, list)) else item


def check_quantizable(model: nn.Module, mode: str) -> None:
    """Refuse, with a one-line reason, what this stack cannot quantise."""
    if mode not in MODES:
        raise ConfigError(f"unknown quantisation mode {mode!r}; choose one of {', '.join(MODES)}")
    if isinstance(model, QuantizedModel):
        raise ConfigError("this model is already quantised")
    if model.training:
        raise ConfigError("call model.eval() before quantising: BatchNorm statistics are fixed in the int8 graph")
    if any(isinstance(m, InferenceOnly) for m in model.modules()):
        raise ConfigError(
            "quantise the model as vast.create_model returns it, not a fused one: quantize fuses a copy itself"
        )
    if next(model.parameters()).device.type != "cpu":
        raise ConfigError("int8 inference runs on the CPU: move the model there with model.cpu() first")


def check_calibration(mode: str, calibration: Iterable[Any] | None) -> None:
    if mode == "static" and calibration is None:
        raise ConfigError("static quantisation needs calibration clips (for example a few batches of the training set)")
    if mode == "dynamic" and calibration is not None:
        raise ConfigError("dynamic quantisation needs no calibration clips: it measures each batch as it runs")


def quantize(
    model: nn.Module,
    mode: str = "dynamic",
    example: torch.Tensor | None = None,
    calibration: Iterable[Any] | None = None,
    compile: bool = True,
    reduce_range: bool | None = None,
) -> QuantizedModel:
    """An int8 copy of ``model`` (left unchanged) for CPU inference.

    ``example`` is one clip batch of the shape to serve (default: the model's ``pretrained_cfg``
    input size, batch 1); the graph takes any batch size at that clip shape. ``static`` needs
    ``calibration``: clip batches, or (clips, labels) pairs such as a DataLoader yields, from the
    training set; every clip of it is seen once. ``dynamic`` takes none. ``reduce_range`` quantises
    activations to 7 bits; the default does so on CPUs without VNNI (:func:`cpu_has_vnni`), as torchao
    advises, where 8-bit activations can saturate the int8 matmuls.
    """
    check_quantizable(model, mode)
    check_calibration(mode, calibration)
    example = _default_example(model) if example is None else example
    batch = torch.export.Dim("batch", min=1, max=4096)
    # An example of batch 1 would fix the batch size in the graph.
    traced = example.repeat(2, *[1] * (example.dim() - 1)) if example.shape[0] == 1 else example

    def calibrate(prepared: nn.Module) -> int:
        seen = 0
        for clips in calibration_batches(calibration if mode == "static" else [example]):
            prepared(clips)
            seen += clips.shape[0]
        return seen if mode == "static" else 0

    graph, info = quantize_graph(
        _foldable_copy(model), (traced,), mode, calibrate, dynamic_shapes=({0: batch},), reduce_range=reduce_range
    )
    return QuantizedModel(graph, info, tuple(example.shape[1:]), compiled=compile)


def _foldable_copy(model: nn.Module) -> nn.Module:
    """What is captured: for AST / VAST, a copy fused for inference on plain ``F.linear`` (BatchNorm
    folded into the projections, value and affine one matmul), so the int8 graph has fewer ops, and no
    BatchNorm is left for ``convert_pt2e``'s conv-BN pass, which traces 96 patterns (many seconds) to
    find none. Other models as they are."""
    if not hasattr(model, "fuse_for_inference"):
        return model
    fused = fuse_for_inference(copy.deepcopy(model), onednn=False)
    for name, module in list(fused.named_modules()):
        if isinstance(module, PackedLinear):
            owner, _, attr = name.rpartition(".")
            setattr(fused.get_submodule(owner) if owner else fused, attr, _QuantizableLinear(module))
    return fused


class _QuantizableLinear(nn.Module):
    """A :class:`PackedLinear` as an ``nn.Linear`` call (which the x86 quantiser finds by module type),
    its activation and residual addition after it."""

    def __init__(self, packed: PackedLinear) -> None:
        super().__init__()
        self.linear = nn.Linear(packed.in_features, packed.out_features, bias=packed.bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(packed.weight)
            if packed.bias is not None:
                self.linear.bias.copy_(packed.bias)
        self.activation = packed.activation

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        y = self.linear(x)
        if self.activation == "gelu":
            y = torch.nn.functional.gelu(y)
        return y if residual is None else y + residual


def quantize_graph(
    module: nn.Module,
    example_args: tuple[torch.Tensor, ...],
    mode: str,
    calibrate: Callable[[nn.Module], int],
    dynamic_shapes: tuple[Any, ...] | None = None,
    reduce_range: bool | None = None,
) -> tuple[torch.fx.GraphModule, QuantizationInfo]:
    """The PT2E steps for any module (a model, a streaming step): capture a copy, annotate it with the
    x86 quantiser, run ``calibrate(prepared)`` (it returns how many clips it showed), convert.
    ``reduce_range`` ``None``: 7-bit activations where the CPU has no VNNI."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86

    with torch.no_grad():
        captured = torch.export.export(
            copy.deepcopy(module), example_args, dynamic_shapes=dynamic_shapes, strict=False
        ).module()
    quantizer = x86.X86InductorQuantizer()
    reduce = not cpu_has_vnni() if reduce_range is None else reduce_range
    config = x86.get_default_x86_inductor_quantization_config(is_dynamic=mode == "dynamic", reduce_range=reduce)
    quantizer.set_global(config)
    prepared = prepare_pt2e(captured, quantizer)
    with torch.no_grad():
        seen = calibrate(prepared)
    graph = _drop_unused_constants(convert_pt2e(prepared))
    activations = "int8, per tensor" + (", 7-bit range (no VNNI)" if reduce else "")
    info = QuantizationInfo(mode, calibration_clips=seen, activations=activations, reduce_range=reduce)
    _logger.info("quantised (%s, %s), %d calibration clips", mode, STACK, seen)
    return graph, info


def _default_example(model: nn.Module) -> torch.Tensor:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = cfg.get("input_size")
    if size is None:
        raise ConfigError("give quantize() an example clip batch: this model states no input size")
    return torch.randn((1, *size), generator=torch.Generator().manual_seed(0))
