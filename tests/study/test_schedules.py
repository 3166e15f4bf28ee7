"""A run's own overrides, a group's epochs schedule, the convergence claim and pinned record keys, each
checked against expectations worked out by hand (and keys recorded by earlier studies)."""

import hashlib
import json
import math
import re

import pytest
import yaml

from vast.cli.main import main
from vast.errors import ConfigError
from vast.study import RunSpec, load_plan, run_study
from vast.study.report import convergence_table, finish, summarise

TSM_1X = {"model": "vast_nano", "factor": 1}


def _plan_file(tmp_path, groups, quick=None, name="plan.yaml"):
    plan = {"name": "schedules", "recipe": "demo", "data": {"generator": "moving-digits"}, "seeds": [0, 1],
            "groups": groups}  # fmt: skip
    if quick is not None:
        plan["quick"] = quick
    path = tmp_path / name
    path.write_text(yaml.safe_dump(plan))
    return path


def _convergence_group(**extra):
    runs = [
        {"label": "A", "model": "vast_nano", "overrides": ["optim.lr=0.001"]},
        {"label": "B", "model": "tsm", "match_gmacs": TSM_1X},
    ]
    return {"name": "conv", "claim": "convergence", "epochs": [1, 3], "runs": runs, **extra}


def test_epochs_expand_every_entry_schedule_outside_entries_seeds_innermost(tmp_path):
    plain = {"name": "plain", "runs": [{"label": "C", "model": "vast_nano"}]}
    plan = load_plan(_plan_file(tmp_path, [_convergence_group(), plain]))
    got = [(s.group, s.label, s.epochs, s.seed, s.overrides) for s in plan.runs()]
    lr, one, three = "optim.lr=0.001", "train.epochs=1", "train.epochs=3"
    assert got == [
        ("conv", "A", 1, 0, (lr, one)), ("conv", "A", 1, 1, (lr, one)),
        ("conv", "B", 1, 0, (one,)), ("conv", "B", 1, 1, (one,)),
        ("conv", "A", 3, 0, (lr, three)), ("conv", "A", 3, 1, (lr, three)),
        ("conv", "B", 3, 0, (three,)), ("conv", "B", 3, 1, (three,)),
        ("plain", "C", None, 0, ()), ("plain", "C", None, 1, ()),
    ]  # fmt: skip
    assert {s.claim for s in plan.runs()[:8]} == {"convergence"}
    assert len({s.config_key for s in plan.runs()}) == 5  # A and B at two schedules, C


def _key(*what):
    """The key formula written out: the model and the first 8 hex digits of the sorted JSON's SHA-1."""
    return f"{what[0]}-{hashlib.sha1(json.dumps(list(what), sort_keys=True).encode()).hexdigest()[:8]}"


def test_config_key_with_and_without_overrides():
    tsm = RunSpec("g", "TSM", "tsm", {}, 0, match_gmacs=TSM_1X)
    # Without overrides: the key docs/results/paper-claims.json recorded TSM at 1x under, before runs had them.
    assert tsm.config_key == "tsm-15edba74" and tsm.key == "tsm-15edba74-s0"
    lr = RunSpec("g", "TSM", "tsm", {}, 0, match_gmacs=TSM_1X, overrides=("optim.lr=0.001",))
    assert lr.config_key == _key("tsm", {}, TSM_1X, ["optim.lr=0.001"]) != tsm.config_key
    longer = RunSpec("g", "TSM", "tsm", {}, 3, match_gmacs=TSM_1X, overrides=("train.epochs=6",))
    assert longer.config_key not in (tsm.config_key, lr.config_key) and longer.key.endswith("-s3")


def test_config_key_pins_the_vast_reach_options():
    default = RunSpec("g", "VAST", "vast_nano", {}, 0)
    # The key under which paper-claims and temporal-reach recorded the old block (offset 1, no context)
    # with no options: a study folder of theirs must not hand those records to today's default.
    assert default.config_key != "vast_nano-4c09a2d9"
    # The key temporal-reach recorded offsets 1/2 + context under, named explicitly: today's default.
    assert default.config_key == "vast_nano-0be101d1"
    explicit = RunSpec("g", "VAST", "vast_nano", {"temporal_offsets": [1, 2], "temporal_context": True}, 0)
    assert explicit.config_key == default.config_key
    old = RunSpec("g", "old", "vast_nano", {"temporal_offsets": 1, "temporal_context": False}, 0)
    assert old.config_key == _key("vast_nano", {"temporal_context": False, "temporal_offsets": 1}, None)
    static = RunSpec("g", "static", "vast_nano", {"affine": "static"}, 0)
    assert static.config_key != "vast_nano-a182bf24"  # paper-claims' static affine on the old block
    assert static.config_key == _key(
        "vast_nano", {"affine": "static", "temporal_offsets": [1, 2], "temporal_context": True}, None
    )
    swin = RunSpec("g", "Video Swin", "video_swin", {}, 0, match_gmacs=TSM_1X)
    assert swin.config_key == "video_swin-dbcab6ef"  # peers keep the keys paper-claims recorded


def _one_line_error(path, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_plan(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=0.1"], r"run 'A' in group 'conv': unknown config key 'optim.lrr'.*did you mean optim.lr"),
        (["train.batch_size=0"], r"run 'A' in group 'conv': .*train.batch_size must be positive"),
        (["optim.lr"], r"run 'A' in group 'conv': .*KEY=VALUE"),
        (["model.name=tsn"], r"run 'A' of group 'conv': overrides set model.name, which the study sets"),
        (["model.options.norm=layernorm"], "overrides set model.options.norm, which the study sets"),
        (["train.seed=3"], "overrides set train.seed, which the study sets"),
        (["data.val=x.txt"], "overrides set data.val, which the study sets"),
        (["train.output_dir=/tmp/x"], "overrides set train.output_dir, which the study sets"),
        (["train.epochs=6"], "run 'A' of group 'conv': overrides set train.epochs, which the group's epochs"),
        ("optim.lr=0.1", r"run 'A' of group 'conv': overrides must be a list of KEY=VALUE strings"),
    ],
)
def test_bad_run_overrides_are_one_line_errors(tmp_path, overrides, message):
    group = _convergence_group()
    group["runs"][0]["overrides"] = overrides
    _one_line_error(_plan_file(tmp_path, [group]), message)


@pytest.mark.parametrize("epochs", [[], [0], [1, 1], [1.5], [True], "3", 3, [3, -1]])
def test_bad_epochs_lists_are_one_line_errors(tmp_path, epochs):
    where = re.escape(f"group 'conv' epochs must be a list of different positive epoch counts, e.g. [1, 3, 6]; "
                      f"got {epochs!r}")  # fmt: skip
    _one_line_error(_plan_file(tmp_path, [_convergence_group(epochs=epochs)]), where)
    quick = _plan_file(tmp_path, [_convergence_group()], quick={"epochs": epochs}, name="quick.yaml")
    _one_line_error(quick, "quick.epochs must be a list of different positive epoch counts")  # without --quick too


def test_unknown_group_run_and_quick_keys(tmp_path):
    _one_line_error(_plan_file(tmp_path, [_convergence_group(epoch=[1])]), r"group 'conv' has unknown keys epoch")
    group = _convergence_group()
    group["runs"][1]["override"] = ["optim.lr=0.1"]
    _one_line_error(_plan_file(tmp_path, [group]), r"run 'B' of group 'conv' has unknown keys override")
    _one_line_error(_plan_file(tmp_path, [_convergence_group()], quick={"epoch": [1]}), "unknown quick keys epoch")
    _one_line_error(_plan_file(tmp_path, [_convergence_group(claim="convergance")]), "claim must be one of")


def test_quick_epochs_replace_every_schedule_and_only_with_quick(tmp_path):
    plain = {"name": "plain", "runs": [{"label": "C", "model": "vast_nano"}]}
    path = _plan_file(tmp_path, [_convergence_group(), plain], quick={"seeds": [0], "epochs": [2]})
    full, quick = load_plan(path), load_plan(path, quick=True)
    assert [g.get("epochs") for g in full.groups] == [[1, 3], None]
    assert [g.get("epochs") for g in quick.groups] == [[2], None]  # a group without a schedule keeps none
    got = [(s.label, s.epochs, s.overrides) for s in quick.runs()]
    assert got == [("A", 2, ("optim.lr=0.001", "train.epochs=2")), ("B", 2, ("train.epochs=2",)), ("C", None, ())]


def test_the_shipped_convergence_plan_and_its_listing(capsys):
    plan = load_plan("convergence")
    (group,) = plan.groups
    assert group["claim"] == "convergence" and group["epochs"] == [1, 3, 6, 12] and plan.seeds == [0, 1, 2]
    assert plan.data == {"generator": "study", "num_train": 3200, "num_val": 800} and plan.recipe == "study"
    entries = {e["label"]: e for e in group["runs"]}
    assert entries["VAST"] == {"label": "VAST", "model": "vast_nano"}
    assert entries["VAST (old default)"]["options"] == {"temporal_offsets": 1, "temporal_context": False}
    for label, model in (("MViTv2", "mvit_v2"), ("TSM", "tsm"), ("Video Swin", "video_swin")):
        assert entries[label]["model"] == model and entries[label]["match_gmacs"] == TSM_1X
    assert len(plan.runs()) == 5 * 4 * 3 == len({s.key for s in plan.runs()})
    # 3,200 videos at batch 16 are 200 steps an epoch: 200, 600, 1,200 and 2,400 steps.
    assert [3200 // 16 * e for e in group["epochs"]] == [200, 600, 1200, 2400]
    quick = load_plan("convergence", quick=True)
    assert quick.seeds == [0] and quick.data["num_train"] <= 96 and len(quick.runs()) == 5 * 2
    assert main(["study", "--list"]) == 0
    listed = capsys.readouterr().out
    assert (
        "convergence: 20 configurations x seeds [0, 1, 2]; groups: convergence 1x (5 x epochs [1, 3, 6, 12])\n"
        in listed
    )


def _fake_records(plan):
    """Two seeds of A (vast_nano) and B (tsm) at 1 and 3 epochs, 200 and 600 steps."""
    top1 = {("A", 1): (50.0, 54.0), ("A", 3): (80.0, 82.0), ("B", 1): (60.0, 60.0), ("B", 3): (70.0, 74.0)}
    base = {"options": {}, "num_classes": 10, "input_shape": [1, 3, 4, 32, 32], "params": 1000, "top5": 100.0,
            "train_seconds": 1.0, "latency_ms": 2.0, "train_memory_mb": 3.0, "gmacs": 0.05}  # fmt: skip
    return [
        {**base, "key": s.key, "model": s.model, "seed": s.seed, "top1": top1[(s.label, s.epochs)][s.seed],
         "epochs": s.epochs, "steps": 200 * s.epochs, "overrides": list(s.overrides)}
        for s in plan.runs()
    ]  # fmt: skip


def test_convergence_table_and_figure_from_hand_made_records(tmp_path):
    plan = load_plan(_plan_file(tmp_path, [_convergence_group()]))
    records = _fake_records(plan)
    rows = summarise(plan, records)
    assert [(r["label"], r["epochs"], r["steps"], r["top1"]) for r in rows] == [
        ("A", 1, 200, 52.0), ("B", 1, 200, 60.0), ("A", 3, 600, 81.0), ("B", 3, 600, 72.0)
    ]  # fmt: skip
    assert rows[0]["top1_std"] == pytest.approx(math.sqrt(8)) and rows[1]["top1_std"] == 0.0
    table = convergence_table(rows).splitlines()
    assert table[0] == (
        "| configuration | model | GMACs | GMACs / first | 200 steps (1 ep.) | 600 steps (3 ep.) "
        "| first - this, at each step count |"
    )
    # A - B: 52 - 60 = -8 beyond the spread 2.8 at 200 steps, 81 - 72 = +9 beyond it at 600.
    assert table[2] == "| A | vast_nano | 0.0500 | 1.00x | 52.0 ± 2.8 (2) | 81.0 ± 1.4 (2) |  |"
    assert table[3] == "| B | tsm | 0.0500 | 1.00x | 60.0 ± 0.0 (2) | 72.0 ± 2.8 (2) | -8.0 not held / +9.0 held |"
    assert len(table) == 4  # one row per label
    report = finish(plan, tmp_path, records, {"cpu": "test cpu", "torch": "x"}).read_text()
    assert "## conv" in report and "\n".join(table) in report and "![convergence](convergence.png)" in report
    assert (tmp_path / "convergence.png").read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "ablations.png").exists()  # a schedule is not an ablation's bars


@pytest.mark.slow
def test_a_tiny_schedule_records_its_overrides_steps_and_pinned_options(tmp_path):
    plan = {
        "name": "tiny-schedule",
        "recipe": "demo",
        "data": {"generator": "moving-digits", "num_train": 16, "num_val": 8, "workers": 1},
        "seeds": [0],
        "overrides": ["data.num_frames=4", "data.num_workers=0", "train.batch_size=4", "train.eval_every=0",
                      "train.amp=none", "optim.warmup_epochs=0.5"],
        "groups": [{"name": "conv", "claim": "convergence", "epochs": [1, 2],
                    "runs": [{"label": "VAST", "model": "vast_nano", "overrides": ["optim.lr=0.001"]}]}],
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(plan))
    records = run_study(load_plan(path), tmp_path / "study", quiet=True)
    # 16 videos at batch 4: 4 optimiser steps an epoch.
    got = [(r["epochs"], r["steps"], r["overrides"]) for r in records]
    assert got == [(1, 4, ["optim.lr=0.001", "train.epochs=1"]), (2, 8, ["optim.lr=0.001", "train.epochs=2"])]
    assert all(r["options"] == {"temporal_offsets": [1, 2], "temporal_context": True} for r in records)
    assert main(["study", str(path), "--out", str(tmp_path / "study"), "--quiet"]) == 0  # recorded: report only
    assert (tmp_path / "study" / "convergence.png").is_file()
