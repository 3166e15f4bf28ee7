"""Export a trained model and verify that the exported file (or model folder) gives the eager model's outputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from vast.deploy import package
from vast.deploy.quantize import QuantizedModel, load_quantized
from vast.engine.evaluate import LoadedRun
from vast.errors import ConfigError

_logger = logging.getLogger(__name__)

FORMATS = ("safetensors", "torchscript", "onnx", "exported")
SUFFIXES = {"safetensors": ".safetensors", "torchscript": ".torchscript.pt", "onnx": ".onnx", "exported": ".pt2"}
PARITY_TOLERANCE = 1e-4


# An int8 file is compared with the PyTorch int8 model, not with fp32. Two runtimes round requantised
# activations their own way, so the bound is a share of the logits' spread: the one that int8 keeps to
# fp32 (tests/deploy/test_quantize.py). A dynamic file is ONNX Runtime's own quantisation of the fp32
# graph, with its own per-batch scales: it may differ from the PyTorch int8 model by as much as that
# model differs from fp32, plus the share (the bound an ONNX file within the share of fp32 keeps).
INT8_PARITY_SHARE = 0.1


@dataclass
class ExportResult:
    path: Path
    format: str
    input_shape: tuple[int, ...]
    max_abs_diff: float
    tolerance: float = PARITY_TOLERANCE
    compared_with: str = "the eager model"

    @property
    def ok(self) -> bool:
        return self.max_abs_diff < self.tolerance


def export_model(model: nn.Module, fmt: str, path: str | Path, input_shape: tuple[int, ...]) -> ExportResult:
    """Write ``model`` in ``fmt`` to ``path`` and compare the file's outputs with the eager model's
    on a random input of ``input_shape`` (max absolute difference)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = torch.randn(input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(example)
        if fmt == "safetensors":
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(path))
            from safetensors.torch import load_file

            reloaded = _fresh_copy(model)
            reloaded.load_state_dict(load_file(str(path)))
            actual = reloaded.eval()(example)
        elif fmt == "torchscript":
            scripted = torch.jit.script(model)
            torch.jit.save(scripted, str(path))
            actual = torch.jit.load(str(path))(example)
        elif fmt == "exported":
            program = torch.export.export(model, (example,))
            torch.export.save(program, str(path))
            actual = torch.export.load(str(path)).module()(example)
        else:
            actual = _export_onnx(model, example, path)
    diff = float((actual - expected).abs().max())
    return ExportResult(path, fmt, tuple(input_shape), diff)


def _fresh_copy(model: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(model)


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path, any_batch: bool = False) -> torch.Tensor:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["video"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", max=4096)},) if any_batch else None,
        dynamo=True,
        external_data=False,
    )
    return _run_onnx(path, example)


def _run_onnx(path: Path, example: torch.Tensor) -> torch.Tensor:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"video": example.numpy()})
    return torch.from_numpy(np.asarray(logits))


def export_quantized_onnx(model: nn.Module, quantized: QuantizedModel, path: str | Path) -> ExportResult:
    """Write ``quantized`` (an int8 copy of ``model``) as ONNX and compare ONNX Runtime's outputs with the
    PyTorch int8 model's on a random batch of two clips.

    Static: the converted PT2E graph itself is exported, its scales as QuantizeLinear / DequantizeLinear
    pairs, so both runtimes compute one quantised model. Dynamic: PyTorch's per-batch scale ops have no
    ONNX form, so the fp32 graph is exported and ONNX Runtime's ``quantize_dynamic`` makes its int8
    matmuls the same way (int8 weights per output channel, activations per batch).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    example = torch.randn((2, *quantized.input_shape), generator=generator)
    with torch.no_grad():
        expected = quantized(example)
    if quantized.info.mode == "static":
        actual = _export_onnx(quantized.graph, example, path, any_batch=True)
    else:
        fp32 = path.with_name(path.stem + "-fp32.onnx")
        _export_onnx(model.eval().cpu(), example, fp32, any_batch=True)
        # As the PyTorch int8 model: int8 weights per output channel, the matmuls only (the stem stays fp32).
        # reduce_range: 7-bit weights, so that ONNX Runtime's u8 x s8 kernels on CPUs without VNNI cannot
        # saturate their 16-bit sums; the file then computes the same on every CPU it is taken to.
        quantize_dynamic(str(fp32), str(path), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                         op_types_to_quantize=["MatMul", "Gemm"])  # fmt: skip
        fp32.unlink()
        actual = _run_onnx(path, example)
    diff = float((actual - expected).abs().max())
    tolerance = INT8_PARITY_SHARE * float(expected.std())
    if quantized.info.mode == "dynamic":
        with torch.no_grad():
            tolerance += float((expected - model.eval().cpu()(example)).abs().max())
    return ExportResult(path, "onnx", tuple(example.shape), diff, tolerance, f"the int8 model ({quantized.info.mode})")


def export_package(
    run: LoadedRun, out: str | Path, input_shape: tuple[int, ...], quantized: QuantizedModel | None = None
) -> ExportResult:
    """Write ``run``'s model as a model folder (:mod:`vast.deploy.package`), rebuild the model from the
    folder alone and compare its outputs with the eager model's on a random input of ``input_shape``.
    With ``quantized`` (an int8 copy of the model) the folder also holds its int8 program, and that is
    what is compared, with ``quantized``."""
    model = run.model.eval()
    path = package.write_package(
        out, model, run.config.to_dict(), run.class_names, weights=run.weights, checkpoint=run.checkpoint_path,
        quantized=quantized,
    )  # fmt: skip
    if quantized is not None:
        record = package.read_package(path).quantization
        reloaded = load_quantized(path / record["file"], record, compile=False)
        example = torch.randn((2, *quantized.input_shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            diff = float((reloaded(example) - quantized(example)).abs().max())
        return ExportResult(path, package.FORMAT, tuple(example.shape), diff, PARITY_TOLERANCE,
                            f"the int8 model ({quantized.info.mode})")  # fmt: skip
    reloaded = package.load_package(path).to(next(model.parameters()).device).eval()
    example = torch.randn(input_shape, generator=torch.Generator().manual_seed(0)).to(next(model.parameters()).device)
    with torch.no_grad():
        diff = float((reloaded(example) - model(example)).abs().max())
    return ExportResult(path, package.FORMAT, tuple(input_shape), diff)
