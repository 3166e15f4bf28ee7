"""`vast study`: a tiny plan run end to end, resumed, reported; plans and verdicts checked by hand."""

import json
import re

import pytest
import torch
import yaml

import vast
from vast.bench.machine import machine_info
from vast.cli.main import main
from vast.engine.checkpoint import load_checkpoint
from vast.errors import ConfigError
from vast.study import load_plan, run_study
from vast.study import runner as study_runner
from vast.study.report import finish, summarise, verdict

TINY_TRAINING = [
    "data.num_frames=4",
    "data.crop_size=32",
    "data.short_side=32",
    "data.num_workers=0",
    "train.batch_size=4",
    "train.epochs=1",
    "train.eval_every=0",
    "train.amp=none",
    "optim.warmup_epochs=0.5",
]


# fvcore counts one multiply-add as one flop, as torch.utils.flop_counter's count halved; it also counts
# norms, which the library's convention (vast.models.flops) leaves out, so only these operators are summed.
_MAC_OPERATORS = ("linear", "conv", "matmul", "einsum", "bmm", "addmm")


def fvcore_gmacs(model, shape) -> float:
    """GMACs of one forward pass by fvcore's FlopCountAnalysis (a JIT trace), independent of the library's."""
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model.eval(), torch.zeros(shape))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return sum(count for op, count in analysis.by_operator().items() if op in _MAC_OPERATORS) / 1e9


@pytest.fixture
def tiny_plan(tmp_path):
    plan = {
        "name": "tiny",
        "recipe": "demo",
        "data": {"generator": "moving-digits", "num_train": 16, "num_val": 8, "workers": 1},
        "seeds": [0, 1],
        "overrides": TINY_TRAINING,
        "groups": [
            {
                "name": "affine",
                "claim": "affine",
                "runs": [{"label": "dynamic", "model": "vast_nano"}, {"label": "none", "model": "vast_nano",
                                                                      "options": {"affine": "none"}}],
            },
            {"name": "norm", "runs": [{"label": "BatchNorm", "model": "vast_nano"}]},  # the same config again
        ],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.slow
def test_a_tiny_study_runs_records_resumes_and_reports(tiny_plan, tmp_path, monkeypatch):
    plan = load_plan(tiny_plan)
    out = tmp_path / "study"
    records = run_study(plan, out, quiet=True)
    assert len(records) == 4  # two configurations (the default shared by two groups) x two seeds
    saved = json.loads((out / "study.json").read_text())["records"]
    assert saved == records
    for record in records:
        # Every record rebuilds its model; its size is summed again and its cost counted by fvcore.
        model = vast.create_model(record["model"], num_classes=record["num_classes"], **record["options"])
        model.load_state_dict(load_checkpoint(out / "runs" / record["key"] / "last.pt")["model"])
        assert record["params"] == sum(p.numel() for p in model.parameters())
        assert record["num_classes"] == 8 and record["input_shape"] == [1, 3, 4, 32, 32]
        assert record["gmacs"] == pytest.approx(fvcore_gmacs(model, (1, 3, 4, 32, 32)), rel=1e-6)
        assert 0.0 <= record["top1"] <= record["top5"] <= 100.0
        assert record["train_seconds"] > 0 and record["latency_ms"] > 0 and record["train_memory_mb"] > 1
        assert record["cpu"] == machine_info(torch.device("cpu"))["cpu"]
    # Resumed: nothing is trained again; a lost record is trained again, alone.
    calls = []
    monkeypatch.setattr(study_runner, "run_one", lambda *a, **k: calls.append(a[1].key) or records[0])
    assert run_study(plan, out, quiet=True) == records and calls == []
    (out / "study.json").write_text(json.dumps({"plan": "tiny", "records": records[1:]}))
    run_study(plan, out, quiet=True)
    assert calls == [records[0]["key"]]
    assert main(["study", str(tiny_plan), "--out", str(out), "--quiet"]) == 0  # the CLI on the finished study
    assert (out / "report.md").is_file() and (out / "ablations.png").is_file()


def test_summary_report_and_plots_from_hand_made_records(tiny_plan, tmp_path):
    plan = load_plan(tiny_plan)
    keys = {(spec.label, spec.seed): spec.key for spec in plan.runs()}
    base = {"options": {}, "num_classes": 8, "input_shape": [1, 3, 4, 32, 32], "params": 1000, "top5": 100.0,
            "train_seconds": 1.0, "latency_ms": 2.0, "train_memory_mb": 3.0, "model": "vast_nano"}
    top1 = {("dynamic", 0): 80.0, ("dynamic", 1): 82.0, ("none", 0): 70.0, ("none", 1): 71.0}
    records = [{**base, "key": keys[k], "seed": k[1], "top1": v, "gmacs": 0.05} for k, v in top1.items()]
    rows = summarise(plan, records)
    expected = [("affine", "dynamic"), ("affine", "none"), ("norm", "BatchNorm")]
    assert [(r["group"], r["label"]) for r in rows] == expected
    assert rows[0]["top1"] == 81.0 and rows[0]["top1_std"] == pytest.approx(2**0.5)
    assert rows[2]["top1"] == 81.0  # the shared default configuration, reported in both groups
    report = finish(plan, tmp_path, records, {"cpu": "test cpu", "torch": "x"})
    text = report.read_text()
    assert "## affine" in text and "## norm" in text and "+10.5: held" in text and "test cpu" in text
    assert (tmp_path / "ablations.png").read_bytes()[:4] == b"\x89PNG"
    # A study resumed on another machine names both; records from before runs named theirs take the study's.
    records[0]["cpu"] = "other cpu"
    text = finish(plan, tmp_path, records, {"cpu": "test cpu", "torch": "x"}).read_text()
    assert "several machines (times compare only within one): other cpu; test cpu" in text


@pytest.mark.parametrize(
    ("subject", "other", "expected"),
    [((80, 1), (75, 2), "held"), ((80, 1), (79.5, 1), "within noise"), ((70, 1), (75, 2), "not held")],
)
def test_verdicts_against_the_seed_spread(subject, other, expected):
    row = lambda mean, std: {"top1": mean, "top1_std": std, "seeds": [0, 1, 2]}  # noqa: E731
    difference, noise, said = verdict(row(*subject), row(*other))
    assert said == expected and difference == subject[0] - other[0] and noise == max(subject[1], other[1])
    assert verdict({**row(*subject), "seeds": [0]}, row(*other))[2] == "one seed: no verdict"


def test_shipped_plan_and_bad_plans(tmp_path, capsys):
    plan = load_plan("paper-claims")
    assert len(plan.seeds) >= 3 and {g["name"] for g in plan.groups} >= {"compute 1x", "compute 4x", "affine"}
    quick = load_plan("paper-claims", quick=True)
    assert quick.seeds == [0] and quick.data["num_train"] < plan.data["num_train"]
    assert len({s.config_key for s in plan.runs()}) == len({s.config_key for s in quick.runs()})
    with pytest.raises(ConfigError, match="unknown study plan 'paper-claimz'"):
        load_plan("paper-claimz")
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: []\nrecipie: demo\n")
    with pytest.raises(ConfigError, match="unknown plan keys recipie"):
        load_plan(bad)
    assert main(["study", "nope"]) == 2
    assert "unknown study plan" in capsys.readouterr().err


def _user_data(folder):
    """Six training and three validation videos (real H.264 files) under ``folder/videos``, with CSV
    annotations in ``folder/lists`` that name three classes of their own (a, b, c), not the generator's eight."""
    from vast.data.moving_digits import make_moving_digits

    make_moving_digits(folder / "videos", num_train=6, num_val=3, workers=1, progress=False)
    (folder / "lists").mkdir()
    for split, count in (("train", 6), ("val", 3)):
        rows = "".join(f"{split}/{i:05d}.mp4,{'abc'[i % 3]}\n" for i in range(count))
        (folder / "lists" / f"{split}.csv").write_text("path,label\n" + rows)


def _write_plan(path, data, quick=None):
    plan = {"name": "mine", "recipe": "demo", "data": data, "seeds": [0, 1],
            "overrides": [*TINY_TRAINING, "train.epochs=2"],
            "groups": [{"name": "affine", "runs": [{"label": "dynamic", "model": "vast_nano"}]}]}  # fmt: skip
    if quick is not None:
        plan["quick"] = quick
    path.write_text(yaml.safe_dump(plan))
    return path


@pytest.mark.slow
def test_a_quick_study_on_your_own_annotations(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    _user_data(mine)
    videos = sorted(p.relative_to(mine) for p in (mine / "videos").rglob("*"))
    plan_file = _write_plan(
        mine / "plan.yaml",
        {"train": "lists/train.csv", "val": "lists/val.csv", "root": "videos"},  # relative to the plan's folder
        quick={"seeds": [0], "overrides": ["train.epochs=1"]},
    )
    monkeypatch.chdir(tmp_path)  # not the plan's folder
    plan = load_plan(plan_file, quick=True)
    assert plan.on_annotations and plan.data["train"] == str(mine / "lists" / "train.csv")
    assert plan.data["root"] == str(mine / "videos") and plan.seeds == [0]
    out = tmp_path / "study"
    (record,) = run_study(plan, out, quiet=True)
    assert json.loads((out / "study.json").read_text())["records"] == [record]
    assert record["num_classes"] == 3 and record["epochs"] == 1  # the CSV's classes; the quick overrides
    model = vast.create_model(record["model"], num_classes=record["num_classes"], **record["options"])
    model.load_state_dict(load_checkpoint(out / "runs" / record["key"] / "last.pt")["model"])
    assert not (out / "data").exists()  # nothing generated
    assert sorted(p.relative_to(mine) for p in (mine / "videos").rglob("*")) == videos


def test_plans_on_your_own_annotations_reject_mixed_half_and_missing_data(tmp_path, capsys):
    (tmp_path / "lists").mkdir()
    for name in ("train.txt", "val.txt"):
        (tmp_path / "lists" / name).write_text("a.mp4 0\n")
    both = {"train": "lists/train.txt", "val": "lists/val.txt"}
    plan = load_plan(_write_plan(tmp_path / "ok.yaml", both))
    assert plan.data == {key: str(tmp_path / value) for key, value in both.items()}
    bad = [
        ({**both, "generator": "study"}, None, "give either a generator or train and val annotations, not both"),
        ({"train": "lists/train.txt"}, None, "data has train but no val"),
        ({"val": "lists/val.txt"}, None, "data has val but no train"),
        ({"generator": "study"}, {"data": both}, "quick.data: give either a generator or train and val"),
        (both, {"data": {"num_train": 8, "num_val": 4}}, r"quick.data: generator settings \(num_train, num_val\)"),
        ({**both, "num_train": 8}, None, r"data: generator settings \(num_train\) do not apply to your own"),
        ({"generator": "study", "root": "videos"}, None, "data: root goes with train and val annotations"),
        ({**both, "format": "mp4"}, None, "data.format must be one of auto, list, csv"),
    ]
    for data, quick, message in bad:
        with pytest.raises(ConfigError, match=message):
            load_plan(_write_plan(tmp_path / "bad.yaml", data, quick))
    missing = _write_plan(tmp_path / "missing.yaml", {**both, "val": "lists/nope.txt"})
    nope = re.escape(str(tmp_path / "lists" / "nope.txt"))
    with pytest.raises(ConfigError, match=f"data.val {nope} does not exist; give an .* relative to the plan's folder"):
        load_plan(missing)
    quick_missing = _write_plan(tmp_path / "q.yaml", both, {"data": {"train": "small/train.txt", "val": "v.txt"}})
    assert load_plan(quick_missing).data["train"] == str(tmp_path / "lists" / "train.txt")  # --quick's files unused
    with pytest.raises(ConfigError, match=r"quick.data.train .*small/train.txt does not exist"):
        load_plan(quick_missing, quick=True)
    assert main(["study", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.txt does not exist" in err and "\n" not in err  # one line
