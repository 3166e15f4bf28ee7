"""`vast train`, `vast eval`, `vast predict`, `vast export` on the demo data, from the command line."""

import contextlib
import csv
import io
import json
import re
import time

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from vast.cli.main import main
from vast.models import create_model


@pytest.fixture(scope="module")
def cli_training(tiny_overrides, tmp_path_factory):
    """Train once from the command line: the run folder, what `vast train` printed, its wall time."""
    out = tmp_path_factory.mktemp("cli_run")
    argv = ["train", "demo", "--quiet", "--output", str(out)]
    for item in tiny_overrides:
        argv += ["--set", item]
    printed = io.StringIO()  # capsys is per test; this fixture lives for the module
    start = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return out, printed.getvalue(), time.perf_counter() - start


@pytest.fixture(scope="module")
def trained_run(cli_training):
    return cli_training[0]


def reference_model(checkpoint):
    """The run's model rebuilt by hand from the checkpoint file (plain weights, eval mode)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model_config = state["config"]["model"]
    model = create_model(model_config["name"], num_classes=state["num_classes"], **model_config["options"])
    model.load_state_dict(state["model"])
    return model.eval(), state


def test_train_prints_the_result(cli_training):
    out, printed, wall_seconds = cli_training
    lines = printed.splitlines()
    assert len(lines) == 2, printed
    match = re.fullmatch(
        r"trained (\S+): (\d+) epochs, (\d+) steps in (\d+) s; best single-clip val top-1 ([\d.]+) %", lines[0]
    )
    assert match, lines[0]
    name, epochs, steps, seconds, best = match.groups()
    # What the run wrote, read back with yaml, csv and torch.load.
    assert name == yaml.safe_load((out / "config.yaml").read_text())["model"]["name"] == "vast_nano"
    with (out / "val.csv").open() as handle:
        val_rows = list(csv.DictReader(handle))
    last = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
    best_state = torch.load(out / "best.pt", map_location="cpu", weights_only=False)
    # 2 epochs of 16 videos in batches of 4 (tiny_overrides): 8 steps, one validation per epoch.
    assert int(epochs) == last["epoch"] == len(val_rows) == 2
    assert int(steps) == last["global_step"] == int(val_rows[-1]["step"]) == 8
    top1 = [float(row["top1"]) for row in val_rows]
    assert best == f"{max(top1):.2f}" == f"{best_state['best_top1']:.2f}"
    assert best_state["epoch"] == int(val_rows[top1.index(max(top1))]["epoch"])  # best.pt: the first best epoch
    assert 0 <= int(seconds) <= wall_seconds + 1
    assert lines[1] == f"run folder: {out} (report.md, last.pt, best.pt, train.csv, val.csv)"


def test_eval_multi_view_states_the_protocol(trained_run, capsys):
    assert main(["eval", str(trained_run / "best.pt"), "--views", "2x3", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "2 clips x 3 crops = 6 views per video" in out and "softmax scores averaged" in out
    assert "videos    8 evaluated, 0 missing" in out
    report = json.loads((trained_run / "eval_2x3.json").read_text())
    assert report["views"] == "2x3" and report["videos"] == 8 and len(report["confusion"]) == 8
    assert sum(map(sum, report["confusion"])) == 8
    assert (trained_run / "confusion_2x3.png").stat().st_size > 1000


def test_eval_of_the_fused_model_gives_the_same_result(trained_run, tmp_path, capsys):
    plain, fused = tmp_path / "plain", tmp_path / "fused"
    assert main(["eval", str(trained_run / "best.pt"), "--workers", "0", "--out", str(plain)]) == 0
    assert main(["eval", str(trained_run / "best.pt"), "--workers", "0", "--out", str(fused), "--fuse"]) == 0
    reports = [json.loads((folder / "eval_1x1.json").read_text()) for folder in (plain, fused)]
    assert reports[0]["confusion"] == reports[1]["confusion"] and reports[0]["top1"] == reports[1]["top1"]


def test_eval_counts_broken_videos_as_missing(trained_run, tiny_demo, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    listing = tmp_path / "val.txt"
    good = [line for line in tiny_demo.val.read_text().splitlines() if line][:3]
    listing.write_text("".join(f"{tiny_demo.root / line.split()[0]} {line.split()[1]}\n" for line in good))
    listing.write_text(listing.read_text() + f"{broken} 0\n")
    (tmp_path / "classes.txt").write_text(tiny_demo.class_names_file.read_text())
    assert main(["eval", str(trained_run), "--data", str(listing), "--workers", "0", "--out", str(tmp_path)]) == 0
    assert "videos    3 evaluated, 1 missing" in capsys.readouterr().out
    assert json.loads((tmp_path / "eval_1x1.json").read_text())["missing_paths"] == [str(broken)]


def reference_probabilities(checkpoint, video):
    """Softmax of the model run by hand on the clip `vast predict` should read: PyAV decodes the
    16 frames of 64 x 64; TSN with 4 segments takes the centre frame of each (2, 6, 10, 14); the
    short side goes to 32 (= the crop: nothing is cropped); then (x / 255 - mean) / std."""
    model, state = reference_model(checkpoint)
    data = state["config"]["data"]
    assert (data["sampler"], data["num_frames"], data["short_side"], data["crop_size"]) == ("tsn", 4, 32, 32)
    with av.open(str(video)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert frames.shape == (16, 64, 64, 3)
    picked = torch.from_numpy(frames[[2, 6, 10, 14]]).permute(0, 3, 1, 2)  # (T, 3, 64, 64) uint8
    small = F.interpolate(picked, size=(32, 32), mode="bilinear", antialias=True)
    mean = torch.tensor(data["mean"], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(data["std"], dtype=torch.float64).view(1, 3, 1, 1)
    clip = ((small.double() / 255 - mean) / std).float().permute(1, 0, 2, 3)  # (C, T, H, W)
    with torch.no_grad():
        probs = model(clip[None]).softmax(dim=-1)[0]
    return {name: float(p) for name, p in zip(state["class_names"], probs)}


def test_predict_table_and_json(trained_run, tiny_demo, capsys):
    video = str(tiny_demo.root / "val" / "00000.mp4")
    expected = reference_probabilities(trained_run / "best.pt", video)
    ranked = sorted(expected, key=expected.get, reverse=True)
    assert expected[ranked[2]] - expected[ranked[3]] > 1e-4  # a clear top 3 (no near tie to reorder)

    assert main(["predict", str(trained_run / "best.pt"), video, "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == video and len(lines) == 4
    rows = [re.fullmatch(r"  (\d)\. (\S+)\s+([\d.]+) %", line).groups() for line in lines[1:]]
    assert [(int(rank), name) for rank, name, _ in rows] == [(1, ranked[0]), (2, ranked[1]), (3, ranked[2])]
    for _, name, percent in rows:
        assert abs(float(percent) - 100 * expected[name]) <= 0.005 + 1e-6, name

    assert main(["predict", str(trained_run / "best.pt"), video, "--json", "--top-k", "3"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload[0]["video"] == video
    assert [entry["class"] for entry in payload[0]["top"]] == ranked[:3]
    for entry in payload[0]["top"]:
        assert entry["probability"] == pytest.approx(expected[entry["class"]], abs=1e-5)

    # --top-k past the number of classes: every class, and the same probabilities after --fuse.
    assert main(["predict", str(trained_run / "best.pt"), video, "--json", "--top-k", "20", "--fuse"]) == 0
    fused = json.loads(capsys.readouterr().out)[0]["top"]
    assert [entry["class"] for entry in fused] == ranked
    for entry in fused:
        assert entry["probability"] == pytest.approx(expected[entry["class"]], abs=1e-4)


def load_exported(fmt, path):
    """The exported file, run with its format's own loader."""
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    if fmt == "exported":
        return torch.export.load(str(path)).module()
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


@pytest.mark.parametrize(
    "fmt", ["safetensors", "torchscript", "exported", pytest.param("onnx", marks=pytest.mark.slow)]
)
def test_export_checks_parity(trained_run, tmp_path, fmt, capsys):
    out = tmp_path / f"model.{fmt}"
    assert main(["export", str(trained_run / "best.pt"), "--format", fmt, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "parity with the eager model" in text and ", ok" in text
    # Not only the command's own parity check: the file against the checkpoint, on an input of ours.
    model, state = reference_model(trained_run / "best.pt")
    if fmt == "safetensors":
        from safetensors.torch import load_file

        weights = load_file(str(out))
        assert weights.keys() == state["model"].keys()
        for key, value in state["model"].items():
            assert torch.equal(weights[key], value), key
        return
    x = torch.randn(1, 3, 4, 32, 32, generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        expected = model(x)
        actual = load_exported(fmt, out)(x)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "no_such_recipe"], "recipe not found"),
        (["train", "demo", "--set", "optim.lrr=1"], "did you mean optim.lr"),
        (["train", "demo", "--set", "data.train=/nonexistent/train.txt"], "annotation file not found"),
        (["eval", "/nonexistent/best.pt"], "checkpoint not found"),
        (["eval", "RUN", "--views", "4by3"], "CLIPSxCROPS"),
        (["predict", "RUN", "/nonexistent/video.mp4"], "video not found"),
        (["predict", "RUN", "NOT_A_VIDEO"], "not_a_video.mp4"),
        (["export", "RUN", "--format", "onnx", "--input", "1,3,8,30,30"], "multiples of 4"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, message, trained_run, tmp_path, capsys):
    not_a_video = tmp_path / "not_a_video.mp4"
    not_a_video.write_text("hello")
    argv = [str(trained_run / "best.pt") if a == "RUN" else str(not_a_video) if a == "NOT_A_VIDEO" else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_resume_from_the_command_line_uses_the_runs_own_config(tiny_overrides, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "demo", "--quiet", "--output", str(out), "--set", "train.max_steps=3"]
    for item in tiny_overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    # The saved config stops at 3 steps; lift that limit to run to the end of the 2 epochs.
    assert main(["train", "--resume", str(out / "last.pt"), "--quiet", "--set", "train.max_steps=0"]) == 0
    assert "2 epochs, 8 steps" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("option", "message"),
    [("temporal_offsets=[1,0]", "temporal_offsets must be"), ("temporal_ofsets=2", "did you mean temporal_offsets")],
)
def test_a_bad_model_option_is_one_line_and_exit_2(option, message, tiny_overrides, tmp_path, capsys):
    overrides = [*tiny_overrides, f"train.output_dir={tmp_path}", f"model.options.{option}"]
    assert main(["train", "demo", *[a for o in overrides for a in ("--set", o)]]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
