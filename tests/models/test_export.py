"""vast_nano and ast_nano give the eager outputs (max abs diff < 1e-4) under torch.compile,
TorchScript, torch.export and ONNX (onnxruntime)."""

import numpy as np
import pytest
import torch

import vast

TOLERANCE = 1e-4
CASES = {"vast_nano": (2, 3, 4, 64, 64), "ast_nano": (2, 3, 64, 64)}
# vast_nano with the temporal reach options, in both forms
REACH = {
    "vast_nano+reach": dict(temporal_offsets=[1, 2], temporal_context=True),
    "vast_nano+causal reach": dict(temporal_offsets=[2, 1], temporal_context=True, causal=True),
}


@pytest.fixture(params=[*sorted(CASES), *REACH], scope="module")
def model_and_input(request, randomize):
    torch.manual_seed(0)
    name, options = request.param.split("+")[0], REACH.get(request.param, {})
    model = randomize(vast.create_model(name, num_classes=10, **options)).eval()
    x = torch.randn(CASES[name])
    with torch.no_grad():
        expected = model(x)
    return model, x, expected


def _max_diff(a, b) -> float:
    return float((torch.as_tensor(a) - b).abs().max())


def test_torchscript_script_and_trace(model_and_input):
    model, x, expected = model_and_input
    with torch.no_grad():
        assert _max_diff(torch.jit.script(model)(x), expected) < TOLERANCE
        assert _max_diff(torch.jit.trace(model, x)(x), expected) < TOLERANCE


def test_torch_export(model_and_input, tmp_path):
    model, x, expected = model_and_input
    program = torch.export.export(model, (x,))
    path = tmp_path / "model.pt2"
    torch.export.save(program, path)
    loaded = torch.export.load(path)
    with torch.no_grad():
        assert _max_diff(loaded.module()(x), expected) < TOLERANCE


def test_onnx_through_onnxruntime(model_and_input, tmp_path):
    import onnxruntime as ort

    model, x, expected = model_and_input
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"], dynamo=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": x.numpy()})
    assert _max_diff(torch.from_numpy(np.asarray(logits)), expected) < TOLERANCE


@pytest.mark.slow
def test_torch_compile(model_and_input):
    model, x, expected = model_and_input
    torch._dynamo.reset()
    compiled = torch.compile(model)
    with torch.no_grad():
        assert _max_diff(compiled(x), expected) < TOLERANCE
