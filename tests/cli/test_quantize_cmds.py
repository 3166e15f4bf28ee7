"""`--quantize` of `vast eval` and `vast predict`, on a run trained in the test (the tiny Moving-Digits
set), against the same commands in fp32."""

import json
import re

import pytest

from vast.cli.main import main
from vast.deploy import QuantizedModel
from vast.deploy.quantize import cpu_has_vnni

REDUCED = "" if cpu_has_vnni() else ", 7-bit activations"  # the activation range this CPU gets (deploy.quantize)
STATIC_FORM = "form      int8 static (torchao-pt2e-x86-inductor, calibrated on 8 clips" + REDUCED + ")"


def test_eval_quantize_static_reports_the_form_beside_the_fp32_report(bidirectional_run, tmp_path, capsys):
    common = ["eval", str(bidirectional_run), "--workers", "0", "--out", str(tmp_path)]
    assert main(common) == 0
    assert main([*common, "--quantize", "static", "--calibration-clips", "8", "--no-compile"]) == 0
    printed = capsys.readouterr().out
    assert "form      fp32" in printed
    assert STATIC_FORM in printed
    fp32 = json.loads((tmp_path / "eval_1x1.json").read_text())
    int8 = json.loads((tmp_path / "eval_1x1_int8-static.json").read_text())
    assert (fp32["form"], int8["form"]) == ("fp32", "int8-static")
    assert int8["videos"] == fp32["videos"] == 8
    assert abs(int8["top1"] - fp32["top1"]) <= 100 / 8  # at most one of the 8 videos decided otherwise
    assert (tmp_path / "confusion_1x1_int8-static.png").stat().st_size > 1000


def _percentages(printed):
    return {name: float(p) for name, p in re.findall(r"  \d\. (\S+)\s+([\d.]+) %", printed)}


def test_predict_quantize_dynamic_stays_close_to_fp32(bidirectional_run, tiny_demo, capsys):
    video = str(tiny_demo.root / "val" / "00000.mp4")
    command = ["predict", str(bidirectional_run), video, "--top-k", "8"]
    assert main(command) == 0
    fp32 = _percentages(capsys.readouterr().out)
    assert main([*command, "--quantize", "dynamic", "--no-compile"]) == 0
    int8 = _percentages(capsys.readouterr().out)
    assert fp32.keys() == int8.keys() and len(fp32) == 8
    for name, percent in fp32.items():
        assert int8[name] == pytest.approx(percent, abs=1.0), name


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--calibration", "x.csv"], "--calibration is for --quantize static"),
        (["--quantize", "dynamic", "--fuse"], "--fuse and --quantize are two forms of the model"),
        (["--quantize", "dynamic", "--online"], "an int8 model takes one clip shape: drop --quantize"),
        (["--quantize", "dynamic", "--calibration", "x.csv"], "dynamic quantisation needs no clips"),
    ],
)
def test_quantize_options_that_do_not_fit_are_refused_in_one_line(bidirectional_run, extra, message, capsys):
    assert main(["eval", str(bidirectional_run), "--workers", "0", *extra]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_export_onnx_quantize_runs_in_onnx_runtime_like_the_pytorch_int8_model(bidirectional_run, model_and_clips,
                                                                              mode, tmp_path, capsys):  # fmt: skip
    """The int8 ONNX file, run by ONNX Runtime on every validation clip, against the PyTorch int8 model
    quantised the same way: the same top-1 on every clip."""
    import onnxruntime as ort

    from vast.engine.evaluate import load_run
    from vast.engine.quantization import quantize_run

    out = tmp_path / "model.onnx"
    command = ["export", str(bidirectional_run), "--format", "onnx", "--out", str(out), "--quantize", mode]
    code = main([*command, "--calibration-clips", "8"] if mode == "static" else command)
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"(onnx, int8 {mode}, input 2x3x4x32x32)" in printed and f"int8 model ({mode})" in printed
    assert printed.rstrip().endswith(", ok")
    run = quantize_run(load_run(bidirectional_run), mode, clips=8, compile=False)
    clips = model_and_clips(bidirectional_run)[1]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    onnx_top1 = session.run(None, {"video": clips.numpy()})[0].argmax(1)
    assert (onnx_top1 == run.model(clips).argmax(1).numpy()).all()


def test_a_quantised_model_folder_records_how_and_evaluates_as_exported(bidirectional_run, tiny_demo, tmp_path,
                                                                        capsys):  # fmt: skip
    folder = tmp_path / "int8-folder"
    command = ["export", str(bidirectional_run), "--format", "dir", "--out", str(folder), "--quantize", "static"]
    code = main([*command, "--calibration-clips", "8"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "int8 model (static)" in printed and printed.rstrip().endswith(", ok")
    record = json.loads((folder / "config.json").read_text())["quantization"]
    assert record["mode"] == "static" and record["calibration_clips"] == 8
    assert record["reduce_range"] is not cpu_has_vnni()
    assert record["stack"] == "torchao-pt2e-x86-inductor" and record["input_shape"] == [3, 4, 32, 32]
    assert (folder / record["file"]).is_file() and (folder / "model.safetensors").is_file()

    common = ["--workers", "0", "--no-compile", "--data", str(tiny_demo.val)]
    assert main(["eval", str(folder), *common, "--out", str(tmp_path / "folder")]) == 0
    assert STATIC_FORM in capsys.readouterr().out
    assert main(["eval", str(bidirectional_run), "--quantize", "static", "--calibration-clips", "8", *common,
                 "--out", str(tmp_path / "run")]) == 0  # fmt: skip
    reports = [json.loads((tmp_path / where / "eval_1x1_int8-static.json").read_text()) for where in ("folder", "run")]
    # The same calibration clips, the same int8 model: the same predictions on every video.
    assert reports[0]["videos"] == 8 and reports[0]["confusion"] == reports[1]["confusion"]

    import vast

    assert not isinstance(vast.create_model(folder), QuantizedModel)  # the reference model, fp32
