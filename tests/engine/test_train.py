"""The trainer: exact resume, accumulation, non-finite loss, logs and reports."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vast.engine.checkpoint import load_checkpoint
from vast.engine.config import load_config
from vast.engine.train import NonFiniteLossError, Trainer, train


def _config(overrides, tmp_path, name, *extra):
    return load_config("demo", [*overrides, f"train.output_dir={tmp_path / name}", *extra])


def _weights(path):
    return load_checkpoint(path)["model"]


def test_training_writes_checkpoints_logs_and_report(tiny_overrides, tmp_path):
    result = train(_config(tiny_overrides, tmp_path, "run"), quiet=True)
    run = tmp_path / "run"
    for name in ("last.pt", "best.pt", "config.yaml", "train.csv", "val.csv", "report.md", "curves.png"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    assert result.epochs_done == 2 and result.steps_done == 8  # 16 videos / batch 4 = 4 steps per epoch
    checkpoint = load_checkpoint(run / "last.pt")
    for key in ("model", "optimizer", "scheduler", "rng", "epoch", "global_step", "config", "class_names"):
        assert key in checkpoint
    assert checkpoint["class_names"][:2] == ["move_left", "move_right"]
    assert "single clip" in (run / "report.md").read_text()
    header = (run / "train.csv").read_text().splitlines()[0]
    assert header == "step,epoch,loss,lr,clips_per_s,data_time_s"


@pytest.mark.parametrize("split_at", [2, 6])  # mid-epoch, and in the second epoch
def test_resume_gives_identical_weights(tiny_overrides, tmp_path, split_at):
    extra = ["model.options.drop_path_rate=0.1", "train.ema=true", "train.mixup=0.2", "optim.clip_grad=1.0"]
    straight = _config(tiny_overrides, tmp_path, "straight", *extra)
    train(straight, quiet=True)

    first = _config(tiny_overrides, tmp_path, "split", *extra, f"train.max_steps={split_at}")
    assert train(first, quiet=True).steps_done == split_at
    second = _config(tiny_overrides, tmp_path, "split", *extra)
    result = train(second, resume=tmp_path / "split" / "last.pt", quiet=True)
    assert result.steps_done == 8

    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(tmp_path / "split" / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in a["ema"]:
        assert torch.equal(a["ema"][key], b["ema"][key]), key


def test_gradient_accumulation_equals_the_large_batch(tiny_overrides, tmp_path):
    # SGD: its update is linear in the gradient (Adam's first step is not: it divides by |g|).
    common = ["model.options.norm=layernorm", "train.max_steps=1", "train.epochs=1", "optim.name=sgd"]
    big = _config(tiny_overrides, tmp_path, "big", *common, "train.batch_size=4")
    small = _config(tiny_overrides, tmp_path, "small", *common, "train.batch_size=2", "optim.accum_steps=2")
    train(big, quiet=True)
    train(small, quiet=True)
    a, b = _weights(tmp_path / "big" / "last.pt"), _weights(tmp_path / "small" / "last.pt")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(tiny_overrides, tmp_path):
    train(_config(tiny_overrides, tmp_path, "run", "train.max_steps=2"), quiet=True)
    last = tmp_path / "run" / "last.pt"
    good = last.read_bytes()
    trainer = Trainer(_config(tiny_overrides, tmp_path, "run"), resume=last, quiet=True)
    real_forward = trainer.model.forward
    trainer.model.forward = lambda x: real_forward(x) * float("nan")
    with pytest.raises(NonFiniteLossError, match=r"loss became nan .*last good checkpoint is kept"):
        trainer.fit()
    assert last.read_bytes() == good


@pytest.mark.slow
def test_two_process_ddp_ends_with_identical_weights(tiny_overrides, tmp_path):
    """Also when one rank's first batch is all broken videos (it must still join the gradient all-reduce)."""
    script = tmp_path / "ddp_worker.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, torch
            import vast.engine.train as engine
            from vast.data.dataset import BrokenVideo, VideoBatch
            from vast.engine.config import load_config
            from vast.engine.runtime import unwrap
            from vast.engine.train import Trainer

            def first_batch_broken_on_rank1(*args, **kwargs):
                loader = real_loader(*args, **kwargs)
                if int(os.environ["RANK"]) != 1 or args[5] != 0:  # rank 1, epoch 0 only
                    return loader
                def batches():
                    for i, batch in enumerate(loader):
                        if i == 0:
                            empty = torch.empty(0, dtype=torch.int64)
                            broken = [BrokenVideo(int(j), "x.mp4", "truncated", "test") for j in batch.indices]
                            batch = VideoBatch(torch.empty(0), empty, empty.clone(), broken)
                        yield batch
                return batches()

            real_loader, engine.train_loader = engine.train_loader, first_batch_broken_on_rank1
            overrides = {tiny_overrides!r} + ["train.output_dir={tmp_path / "ddp"}", "train.threads=1"]
            trainer = Trainer(load_config("demo", overrides), quiet=True)
            result = trainer.fit()
            rank = int(os.environ["RANK"])
            torch.save(unwrap(trainer.model).state_dict(), "{tmp_path}/rank%d.pt" % rank)
            print("videos", rank, trainer.history[-1]["videos"], result.steps_done)
            """
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    done = subprocess.run([*torchrun, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # Each rank trains on its half (2 steps of 4 per epoch) and validation counts all 8 videos once.
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("videos"))
    assert lines == ["videos 0 8 4", "videos 1 8 4"]
    assert (tmp_path / "ddp" / "last.pt").is_file() and not list(Path(tmp_path / "ddp").glob("*.tmp"))


def test_a_process_group_the_caller_set_up_outlives_the_run(tiny_overrides, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        train(_config(tiny_overrides, tmp_path, "run", "train.epochs=1", "train.max_steps=1"), quiet=True)
        assert dist.is_initialized()  # the caller's to destroy, not train's
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_training_under_torchrun_destroys_its_process_group(tiny_overrides, tmp_path):
    """`vast train` under torchrun leaves no process group behind, and only rank 0 prints the result."""
    script = tmp_path / "cli_worker.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            import torch.distributed as dist
            from vast.cli.main import main

            code = main(sys.argv[1:])
            print("after", os.environ["RANK"], dist.is_initialized(), code)
            """
        )
    )
    argv = ["train", "demo", "--quiet", "--output", str(tmp_path / "run")]
    for item in [*tiny_overrides, "train.epochs=1", "train.max_steps=1", "train.threads=1"]:
        argv += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518"]
    done = subprocess.run([*torchrun, str(script), *argv], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert sorted(line for line in lines if line.startswith("after")) == ["after 0 False 0", "after 1 False 0"]
    assert sum(line.startswith("trained vast_nano: ") for line in lines) == 1, done.stdout


@pytest.mark.slow
def test_compiled_training_matches_eager_and_saves_plain_weights(tiny_overrides, tmp_path):
    extra = ["train.amp=none", "train.epochs=1"]
    train(_config(tiny_overrides, tmp_path, "eager", *extra), quiet=True)
    train(_config(tiny_overrides, tmp_path, "compiled", *extra, "train.compile=true"), quiet=True)
    eager, compiled = _weights(tmp_path / "eager" / "last.pt"), _weights(tmp_path / "compiled" / "last.pt")
    assert compiled.keys() == eager.keys()  # no _orig_mod. prefixes: the checkpoint loads into a plain model
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-3, atol=1e-4, msg=key)


def test_memory_lean_training_gives_the_plain_runs_weights(tiny_overrides, tmp_path):
    """``train.memory_lean`` changes what autograd stores, not what it computes: the same weights."""
    steps = ["train.max_steps=3", "train.amp=none"]
    train(_config(tiny_overrides, tmp_path, "plain", *steps, "train.memory_lean=false"), quiet=True)
    train(_config(tiny_overrides, tmp_path, "lean", *steps, "train.memory_lean=true"), quiet=True)
    plain, lean = _weights(tmp_path / "plain" / "last.pt"), _weights(tmp_path / "lean" / "last.pt")
    assert plain.keys() == lean.keys()
    for key in plain:
        assert torch.equal(plain[key], lean[key]), key
    built = Trainer(_config(tiny_overrides, tmp_path, "built", "train.memory_lean=true"), quiet=True)
    assert built.model._memory_lean is not None  # the recompute hooks are on



def test_mixup_with_an_odd_batch_size_is_refused_at_setup(tiny_overrides, tmp_path):
    from vast.errors import ConfigError

    with pytest.raises(ConfigError, match=r"even train\.batch_size, not 3"):
        Trainer(_config(tiny_overrides, tmp_path, "odd", "train.mixup=0.2", "train.batch_size=3"), quiet=True)


@pytest.mark.slow
def test_a_peer_trains_on_a_recipe_that_asks_for_memory_lean(tiny_overrides, tmp_path, caplog):
    """`vast train demo --set model.name=tsm`: the recipe's train.memory_lean does not apply to TSM, which
    trains without it (one logged line) instead of stopping."""
    config = _config(tiny_overrides, tmp_path, "tsm", "model.name=tsm", "train.max_steps=1", "train.memory_lean=true")
    with caplog.at_level("INFO", logger="vast.engine.runtime"):
        result = train(config, quiet=True)
    assert result.steps_done == 1 and (tmp_path / "tsm" / "last.pt").is_file()
    assert any("tsm trains without train.memory_lean" in r.getMessage() for r in caplog.records)
    assert config.train.memory_lean  # the caller's config as it was


@pytest.mark.slow
def test_the_final_model_is_tested_with_the_recipes_views(tiny_overrides, tmp_path):
    """data.test_clips x data.test_crops: after the last epoch, a multi-view test of the final weights,
    the same as `vast eval last.pt --views 2x3` computes, beside the single-clip validation."""
    from vast.engine.evaluate import evaluate, load_run

    views = ["train.epochs=1", "data.test_clips=2", "data.test_crops=3"]
    result = train(_config(tiny_overrides, tmp_path, "run", *views), quiet=True)
    run = tmp_path / "run"
    assert result.test is not None and result.test.views == "2x3" and result.test.videos == 8
    again = evaluate(load_run(run / "last.pt"), clips=2, crops=3, workers=0, progress=False)
    assert (result.test.top1, result.test.top5, result.test.confusion) == (again.top1, again.top5, again.confusion)
    assert (run / "eval_2x3.json").is_file() and (run / "confusion_2x3.png").is_file()
    report = (run / "report.md").read_text()
    assert "## Test of the final model (2x3 views)" in report and f"Top-1 {again.top1:.2f} %" in report


def test_a_stopped_run_and_a_one_view_recipe_make_no_test(tiny_overrides, tmp_path):
    stopped = train(_config(tiny_overrides, tmp_path, "a", "data.test_clips=2", "train.max_steps=1"), quiet=True)
    assert stopped.test is None and not list((tmp_path / "a").glob("eval_*.json"))
    single = train(_config(tiny_overrides, tmp_path, "b", "train.epochs=1"), quiet=True)
    assert single.test is None and not list((tmp_path / "b").glob("eval_*.json"))
