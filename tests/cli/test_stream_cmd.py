"""`vast stream`: a file, a stream piped on stdin, the overlay, and one-line errors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from vast.cli.main import main
from vast.data.encoding import write_video


def _first_val(tiny_demo) -> Path:
    line = Path(tiny_demo.val).read_text().splitlines()[0]
    return Path(tiny_demo.val).parent / line.split()[0]


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _cli(*args: str, stdin=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vast", "stream", *args], stdin=stdin, capture_output=True,
                          text=True, env=env, timeout=300)  # fmt: skip


def test_a_file_prints_one_step_per_taken_frame(causal_run, tiny_demo, capsys):
    video = _first_val(tiny_demo)
    assert main(["stream", str(causal_run), str(video), "--json", "--quiet"]) == 0
    out = capsys.readouterr()
    steps = _json_lines(out.out)
    frames = len(_frames(video))
    assert [s["frame"] for s in steps] == list(range(0, frames, 2))  # the run's stride
    assert all(len(s["top"]) == 3 and s["top"][0]["probability"] >= s["top"][1]["probability"] for s in steps)
    assert f"{len(steps)} steps in" in out.err
    assert main(["stream", str(causal_run), str(video), "--every", "4", "--quiet"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == len(range(0, frames, 4)) and " s  frame " in text[0] and " %" in text[0]


def test_a_stream_on_stdin_gives_what_the_same_file_gives(causal_run, tiny_demo, tmp_path):
    ts = tmp_path / "clip.ts"
    write_video(ts, _frames(_first_val(tiny_demo)), fps=8)
    from_file = _cli(str(causal_run), str(ts), "--json", "--quiet")
    with ts.open("rb") as pipe:
        from_stdin = _cli(str(causal_run), "-", "--json", "--quiet", stdin=pipe)
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_stdin.stderr
    steps = _json_lines(from_stdin.stdout)
    assert len(steps) == 8 and steps == _json_lines(from_file.stdout)
    assert steps[-1]["time"] == pytest.approx(14 / 8)  # frame 14 of an 8 fps stream, from its first frame


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command line: apt-get install ffmpeg")
def test_ffmpeg_piping_mpegts_into_vast_stream(causal_run, tiny_demo):
    ffmpeg = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-i", str(_first_val(tiny_demo)), "-c:v", "libx264", "-f", "mpegts", "-"],
        stdout=subprocess.PIPE,
    )
    result = _cli(str(causal_run), "-", "--json", stdin=ffmpeg.stdout)
    ffmpeg.wait()
    assert result.returncode == 0, result.stderr
    assert [s["frame"] for s in _json_lines(result.stdout)] == list(range(0, 16, 2))


def test_the_overlay_and_its_timeline_are_written(causal_run, tiny_demo, tmp_path, capsys):
    out = tmp_path / "labelled.mp4"
    assert main(["stream", str(causal_run), str(_first_val(tiny_demo)), "--overlay", str(out), "--quiet"]) == 0
    assert len(_frames(out)) == 16
    assert (tmp_path / "labelled.timeline.png").read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {out}" in capsys.readouterr().err


def test_sources_that_cannot_be_read_and_models_that_cannot_stream_are_one_line_errors(
    causal_run, bidirectional_run, tmp_path, capsys
):
    video = str(tmp_path / "nothing.mp4")
    assert main(["stream", str(causal_run), video]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "source not found" in err and "nothing.mp4" in err
    assert main(["stream", str(causal_run), "rtsp://127.0.0.1:9/none"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vast stream: error: cannot open rtsp://127.0.0.1:9/none") and err.count("\n") == 0
    assert main(["stream", str(bidirectional_run), video, "--every", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "reads the next frame" in err and "causal=true" in err and err.count("\n") == 0



def test_a_packaged_model_folder_streams_as_its_run_does(causal_run, tiny_demo, tmp_path, capsys):
    folder = tmp_path / "package"
    assert main(["export", str(causal_run / "last.pt"), "--format", "dir", "--out", str(folder)]) == 0
    capsys.readouterr()
    video = str(_first_val(tiny_demo))
    assert main(["stream", str(causal_run), video, "--json", "--quiet"]) == 0
    from_run = _json_lines(capsys.readouterr().out)
    assert main(["stream", str(folder), video, "--json", "--quiet"]) == 0  # the stride comes from the folder
    assert _json_lines(capsys.readouterr().out) == from_run and len(from_run) == 8


def test_stream_quantize_follows_the_fp32_stream(causal_run, tiny_demo, capsys):
    video = str(_first_val(tiny_demo))
    assert main(["stream", str(causal_run), video, "--json", "--quiet", "--top-k", "8"]) == 0
    fp32 = _json_lines(capsys.readouterr().out)
    assert main(["stream", str(causal_run), video, "--json", "--quiet", "--top-k", "8",
                 "--quantize", "dynamic", "--no-compile"]) == 0  # fmt: skip
    int8 = _json_lines(capsys.readouterr().out)
    assert [s["frame"] for s in int8] == [s["frame"] for s in fp32] and len(int8) > 1
    for a, b in zip(fp32, int8):
        expected = {t["class"]: t["probability"] for t in a["top"]}
        actual = {t["class"]: t["probability"] for t in b["top"]}
        assert expected.keys() == actual.keys()
        assert all(abs(actual[name] - p) < 0.02 for name, p in expected.items()), a["frame"]
    assert main(["stream", str(causal_run), video, "--quantize", "dynamic", "--window", "2"]) == 2
    assert "drop --window or --quantize" in capsys.readouterr().err
