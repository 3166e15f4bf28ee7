"""The mean over the official splits, from `vast eval` reports written as eval_<views>.json."""

import json

import pytest

from vast.engine.evaluate import mean_over_splits
from vast.errors import ConfigError

PROTOCOL = "4 clips x 3 crops = 12 views per video (dense clips of 8 frames at stride 8, ...)"


def report(path, top1, top5, missing=0, protocol=PROTOCOL):
    # The fields `vast eval` writes (EvalResult); the mean reads protocol, top1, top5 and missing.
    fields = {"protocol": protocol, "views": "4x3", "videos": 3783, "missing": missing, "top1": top1, "top5": top5}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**fields, "per_class": {}, "confusion": [], "missing_paths": []}))
    return path


def test_mean_of_three_splits(tmp_path):
    paths = [
        report(tmp_path / "split1" / "eval_4x3.json", 90.0, 99.0),
        report(tmp_path / "split2" / "eval_4x3.json", 87.5, 98.0, missing=2),
        report(tmp_path / "split3" / "eval_4x3.json", 89.0, 97.0),
    ]
    mean = mean_over_splits(paths)
    assert mean.top1 == pytest.approx(88.8333333)  # (90 + 87.5 + 89) / 3: each split counts once
    assert mean.top5 == pytest.approx(98.0)
    assert mean.top1_per_split == [90.0, 87.5, 89.0]
    assert mean.missing == 2 and mean.protocol == PROTOCOL
    assert mean.describe().startswith("top-1 88.83 % (mean of 3 splits: 90.00, 87.50, 89.00), top-5 98.00 %")


def test_reports_of_different_protocols_or_not_reports_are_refused(tmp_path):
    one = report(tmp_path / "a.json", 90.0, 99.0)
    other = report(tmp_path / "b.json", 80.0, 95.0, protocol="1 clip x 1 crop = 1 view per video (...)")
    with pytest.raises(ConfigError, match="2 protocols"):
        mean_over_splits([one, other])
    (tmp_path / "c.json").write_text('{"top1": 1}')
    with pytest.raises(ConfigError, match=r"c.json: not a report of `vast eval`"):
        mean_over_splits([one, tmp_path / "c.json"])
    with pytest.raises(ConfigError, match="cannot read an eval report"):
        mean_over_splits([tmp_path / "missing.json"])
    with pytest.raises(ConfigError, match="give the eval"):
        mean_over_splits([])
