"""`vast data make-demo` and `vast data check` from the command line, on real files."""

import re

import av
import numpy as np
import pytest

from vast.cli.main import main
from vast.data.encoding import write_video


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "demo-data"
    args = ["data", "make-demo", str(root), "--num-train", "16", "--num-val", "8", "--workers", "2"]
    assert main(args) == 0
    return root


def test_make_demo_writes_a_set_that_checks_clean(demo_dir, capsys):
    assert len((demo_dir / "train.txt").read_text().splitlines()) == 16
    assert len(list((demo_dir / "val").glob("*.mp4"))) == 8
    assert (demo_dir / "classes.txt").read_text().split() == [
        "move_left",
        "move_right",
        "move_up",
        "move_down",
        "rotate_cw",
        "rotate_ccw",
        "grow",
        "shrink",
    ]
    capsys.readouterr()
    assert main(["data", "check", str(demo_dir / "train.txt"), "--workers", "1"]) == 0
    assert "all 16 videos" in capsys.readouterr().out


def test_check_lists_broken_files_and_exits_1(tmp_path, capsys):
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "good.mp4", frames)
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "readme.mp4").write_text("not a video\n" * 10)
    with av.open(str(tmp_path / "voice.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    listing = tmp_path / "all.txt"
    names = ["good.mp4", "cut.mp4", "empty.mp4", "readme.mp4", "voice.mp4", "gone.mp4"]
    listing.write_text("".join(f"{name} 0\n" for name in names))
    capsys.readouterr()
    assert main(["data", "check", str(listing), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:-1]}
    assert re.match(r"path\s+problem\s+reason", out.splitlines()[0])
    assert "truncated" in rows["cut.mp4"]
    assert "zero-length" in rows["empty.mp4"]
    assert "not a video" in rows["readme.mp4"]
    assert "audio-only" in rows["voice.mp4"]
    assert "missing file" in rows["gone.mp4"]
    assert "good.mp4" not in rows
    assert out.splitlines()[-1].startswith("5 of 6 videos are broken")


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vast data: error:") and "missing.txt" in err and "\n" not in err
    bad = tmp_path / "bad.txt"
    bad.write_text("clip.mp4 zero\n")
    assert main(["data", "check", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.txt line 1" in err and "\n" not in err
    assert main(["data", "check", str(bad), "--root", str(tmp_path / "nowhere")]) == 2
    assert "--root" in capsys.readouterr().err


def test_data_without_an_action_prints_help(capsys):
    assert main(["data"]) == 2
    assert "make-demo" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["data", "make-demo", "x", "--num-train", "0"])


@pytest.mark.skipif("libsvtav1" not in av.codecs_available, reason="this PyAV's FFmpeg has no libsvtav1 encoder")
def test_check_finds_no_problem_in_a_folder_of_av1_files(tmp_path, capsys):
    """AV1 as video sites serve it (MKV, WebM, MP4; closed and forward keyframes), in a class folder:
    libdav1d delays its output, which the check must not count as packets that give no frame."""
    rng = np.random.default_rng(0)
    frames = np.cumsum(rng.integers(0, 6, (100, 64, 64, 3)), axis=0).astype(np.uint8)  # moving noise
    made = {"walk/a.mkv": {}, "walk/b.webm": {"svtav1-params": "irefresh-type=1"}, "run/c.mp4": {}}
    for name, options in made.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write_video(tmp_path / name, frames, codec="libsvtav1", gop=40, options={"preset": "12", **options})
    capsys.readouterr()
    assert main(["data", "check", str(tmp_path), "--workers", "1"]) == 0
    assert "all 3 videos" in capsys.readouterr().out
