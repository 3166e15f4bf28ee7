"""Export a trained model and verify that the exported file (or model folder) gives the eager model's outputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from vast.deploy import package
from vast.engine.evaluate import LoadedRun
from vast.errors import ConfigError

_logger = logging.getLogger(__name__)

FORMATS = ("safetensors", "torchscript", "onnx", "exported")
SUFFIXES = {"safetensors": ".safetensors", "torchscript": ".torchscript.pt", "onnx": ".onnx", "exported": ".pt2"}
PARITY_TOLERANCE = 1e-4


@dataclass
class ExportResult:
    path: Path
    format: str
    input_shape: tuple[int, ...]
    max_abs_diff: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff < PARITY_TOLERANCE


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


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> torch.Tensor:
    import numpy as np
    import onnxruntime as ort

    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["video"],
        output_names=["logits"],
        dynamo=True,
        external_data=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"video": example.numpy()})
    return torch.from_numpy(np.asarray(logits))


def export_package(run: LoadedRun, out: str | Path, input_shape: tuple[int, ...]) -> ExportResult:
    """Write ``run``'s model as a model folder (:mod:`vast.deploy.package`), rebuild the model from the
    folder alone and compare its outputs with the eager model's on a random input of ``input_shape``."""
    model = run.model.eval()
    path = package.write_package(
        out, model, run.config.to_dict(), run.class_names, weights=run.weights, checkpoint=run.checkpoint_path
    )
    reloaded = package.load_package(path).to(next(model.parameters()).device).eval()
    example = torch.randn(input_shape, generator=torch.Generator().manual_seed(0)).to(next(model.parameters()).device)
    with torch.no_grad():
        diff = float((reloaded(example) - model(example)).abs().max())
    return ExportResult(path, package.FORMAT, tuple(input_shape), diff)
