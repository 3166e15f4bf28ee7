"""`vast demo` end to end, on a small data set (the full-size acceptance run is in the README)."""

import re

import pytest

from vast.cli.main import main


@pytest.mark.slow
def test_demo_writes_a_report_comparing_vast_with_the_ablation(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--num-train", "48", "--num-val", "16", "--epochs", "1", "--quiet"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert re.search(r"VAST \(temporal shift\)\s+\d+\.\d %", printed)
    assert re.search(r"no temporal shift \(ablation\)\s+\d+\.\d %", printed)
    report = (out / "report.md").read_text()
    assert "time-reversal pairs" in report and "| VAST (temporal shift) |" in report
    for name in ("curves.png", "vast/confusion_1x1.png", "no_temporal_shift/confusion_1x1.png", "vast/best.pt"):
        assert (out / name).is_file(), name
    assert (out / "data" / "train.txt").read_text().count("\n") == 48
    # A second run reuses the data set instead of writing it again.
    assert main([*argv, "--no-ablation"]) == 0
    assert "Data set written in 0 s" in (out / "report.md").read_text()


def test_demo_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--epochs", "many"])
    assert exc.value.code == 2
