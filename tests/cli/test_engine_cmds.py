"""`vast train`, `vast eval`, `vast predict`, `vast export` on the demo data, from the command line."""

import json

import pytest

from vast.cli.main import main


@pytest.fixture(scope="module")
def trained_run(tiny_overrides, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_run")
    argv = ["train", "demo", "--quiet", "--output", str(out)]
    for item in tiny_overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    return out


def test_train_prints_the_result(trained_run, capsys):
    assert (trained_run / "best.pt").is_file() and (trained_run / "report.md").is_file()


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


def test_predict_table_and_json(trained_run, tiny_demo, capsys):
    video = str(tiny_demo.root / "val" / "00000.mp4")
    assert main(["predict", str(trained_run / "best.pt"), video, "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == video and out.count("%") == 3
    assert main(["predict", str(trained_run / "best.pt"), video, "--json", "--top-k", "8"]) == 0
    payload = json.loads(capsys.readouterr().out)
    probs = [entry["probability"] for entry in payload[0]["top"]]
    assert len(probs) == 8 and probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    assert {entry["class"] for entry in payload[0]["top"]} >= {"move_left", "shrink"}
    assert main(["predict", str(trained_run / "best.pt"), video, "--json", "--top-k", "8", "--fuse"]) == 0
    fused = {e["class"]: e["probability"] for e in json.loads(capsys.readouterr().out)[0]["top"]}
    plain = {e["class"]: e["probability"] for e in payload[0]["top"]}
    assert fused.keys() == plain.keys() and all(abs(fused[k] - plain[k]) < 1e-5 for k in plain)


@pytest.mark.parametrize("fmt", ["safetensors", "torchscript", "exported", "onnx"])
def test_export_checks_parity(trained_run, tmp_path, fmt, capsys):
    out = tmp_path / f"model.{fmt}"
    assert main(["export", str(trained_run / "best.pt"), "--format", fmt, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "parity with the eager model" in text and ", ok" in text


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
