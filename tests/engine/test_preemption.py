"""Training that survives preemption: the same command continues its run, checkpoints mid-epoch, stop
signals, torchrun restarts, kills during a write and a full disk; real processes where it is about them."""

import csv
import logging
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vast.engine.checkpoint import load_checkpoint
from vast.engine.config import load_config
from vast.engine.preemption import EXIT_PREEMPTED
from vast.engine.reporting import drop_rows_after
from vast.engine.train import train
from vast.errors import CheckpointError, ConfigError

PACED = Path(__file__).with_name("paced_train.py")
# Random draws in every part of the step (drop path, mixup, EMA), one thread so that two processes
# compute bit for bit the same.
EXACT = ["model.options.drop_path_rate=0.1", "train.ema=true", "train.mixup=0.2", "train.threads=1"]


def _config(overrides, run, *extra):
    return load_config("demo", [*overrides, f"train.output_dir={run}", *extra])


def _assert_same_run(a_path, b_path):
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    assert a["global_step"] == b["global_step"]
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def _cli_args(overrides, run, *extra):
    args = ["demo", "--quiet", "--output", str(run)]
    for item in [*overrides, *extra]:
        args += ["--set", item]
    return args


def _rows(path):
    if not path.is_file():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _wait_for_rows(path, count, proc, timeout=180.0):
    """Until ``path`` (a metrics CSV) has ``count`` rows; the test fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while len(_rows(path)) < count:
        assert proc.poll() is None, f"the run ended before step {count}: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no step {count} within {timeout} s"
        time.sleep(0.05)


def _env(**extra):
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


# ---- in one process ------------------------------------------------------------------------------


def test_the_same_command_continues_its_own_run_exactly(tiny_overrides, tmp_path):
    train(_config(tiny_overrides, tmp_path / "straight", *EXACT), quiet=True)
    run = tmp_path / "run"
    assert train(_config(tiny_overrides, run, *EXACT, "train.max_steps=3"), quiet=True).steps_done == 3
    result = train(_config(tiny_overrides, run, *EXACT), quiet=True)  # no resume given: its own last.pt
    assert result.steps_done == 8
    _assert_same_run(tmp_path / "straight" / "last.pt", run / "last.pt")


def test_another_configuration_is_refused_restart_moves_it_aside(tiny_overrides, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_overrides, run, "train.max_steps=1"), quiet=True)
    with pytest.raises(ConfigError, match=r"another configuration \(optim.lr differ\).*--restart"):
        train(_config(tiny_overrides, run, "optim.lr=0.5"), quiet=True)
    with pytest.raises(ConfigError, match=r"\(train.epochs differ\)"):  # it shapes the schedule
        train(_config(tiny_overrides, run, "train.epochs=3"), quiet=True)

    assert train(_config(tiny_overrides, run, "optim.lr=0.5", "train.max_steps=1"), quiet=True, restart=True)
    (aside,) = run.glob("replaced-*")
    assert load_checkpoint(aside / "last.pt")["config"]["optim"]["lr"] != 0.5  # the earlier run, kept
    assert load_checkpoint(run / "last.pt")["config"]["optim"]["lr"] == 0.5

    # auto-resume off: the folder's run is neither continued nor refused
    result = train(_config(tiny_overrides, run, "optim.lr=0.25", "train.max_steps=1", "train.auto_resume=false"))
    assert result.steps_done == 1


def test_mid_epoch_checkpoints_keep_the_last_few_and_log_their_cost(tiny_overrides, tmp_path, caplog):
    run = tmp_path / "run"
    with caplog.at_level(logging.INFO, logger="vast.engine.train"):
        train(_config(tiny_overrides, run, "train.checkpoint_every=3", "train.keep_last=2"), quiet=True)
    # last.pt is written at steps 3 and 6 (every 3) and 4 and 8 (epoch ends); the newest two are kept
    assert sorted(p.name for p in run.glob("checkpoint-*.pt")) == [
        "checkpoint-e0001-s00000006.pt",
        "checkpoint-e0002-s00000008.pt",
    ]
    mid = load_checkpoint(run / "checkpoint-e0001-s00000006.pt")
    assert (mid["epoch"], mid["batches_done_in_epoch"], mid["global_step"]) == (1, 2, 6)
    written = [r.getMessage() for r in caplog.records if r.getMessage().startswith("wrote last.pt: ")]
    assert len(written) == 5 and all(" MB in " in line and line.endswith(")") for line in written)


def test_an_unwritable_output_folder_fails_before_training(tiny_overrides, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(CheckpointError, match=r"output folder .* is not writable"):
        train(_config(tiny_overrides, blocker / "run"), quiet=True)


def test_rows_logged_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("step,epoch,loss\n1,0.25,2.0\n2,0.5,1.9\n3,0.75,1.8\n")
    drop_rows_after(path, 2)
    assert path.read_text().splitlines() == ["step,epoch,loss", "1,0.25,2.0", "2,0.5,1.9"]


# ---- real processes ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_mid_epoch_writes_last_pt_exits_75_and_the_same_command_finishes_exactly(tiny_overrides, tmp_path):
    train(_config(tiny_overrides, tmp_path / "straight", *EXACT), quiet=True)
    run = tmp_path / "run"
    command = [sys.executable, str(PACED), *_cli_args(tiny_overrides, run, *EXACT)]
    proc = subprocess.Popen(command, env=_env(VAST_TEST_STEP_SECONDS="0.5"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_rows(run / "train.csv", 2, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_PREEMPTED, err[-2000:]
    assert time.monotonic() - sent < 10
    assert "vast train: SIGTERM: stopped at optimiser step" in err
    stopped = load_checkpoint(run / "last.pt")
    assert stopped["batches_done_in_epoch"] > 0 and stopped["global_step"] < 8  # mid-epoch

    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    _assert_same_run(tmp_path / "straight" / "last.pt", run / "last.pt")
    steps = [int(row["step"]) for row in _rows(run / "train.csv")]
    assert steps == list(range(1, 9))  # every step logged once


@pytest.mark.slow
def test_a_second_signal_stops_at_once(tiny_overrides, tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, str(PACED), *_cli_args(tiny_overrides, run, "train.checkpoint_every=1")]
    proc = subprocess.Popen(command, env=_env(VAST_TEST_STEP_SECONDS="5"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_rows(run / "train.csv", 1, proc)
    time.sleep(1.0)  # into the second step (5 s long), after last.pt of step 1 is written
    proc.send_signal(signal.SIGUSR1)
    time.sleep(0.5)
    sent = time.monotonic()
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGUSR1, err[-2000:]
    assert time.monotonic() - sent < 30
    assert "second SIGUSR1: stopped at once" in err and "stopped at optimiser step" not in err  # step 2 unfinished
    assert load_checkpoint(run / "last.pt")["global_step"] == 1


WRITER = """
import sys, torch
from vast.engine.checkpoint import atomic_save
for step in range(1, 10**9):
    atomic_save({"model": {"w": torch.full((4_000_000,), float(step))}, "step": step}, sys.argv[1])
    print(step, flush=True)
"""


@pytest.mark.slow
def test_a_kill_during_a_checkpoint_write_never_leaves_a_torn_or_missing_last_pt(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "last.pt"
    rng, mid_write = random.Random(0), 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip()  # one whole write done: last.pt exists from here on
        time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait()
        proc.stdout.close()
        stale = list(tmp_path.glob(".last.pt.*.tmp"))
        mid_write += bool(stale)  # the kill came in the middle of a write
        for item in stale:
            item.unlink()
        checkpoint = load_checkpoint(path)
        assert torch.all(checkpoint["model"]["w"] == checkpoint["step"])
    assert mid_write > 0, "no kill landed in a write: the test did not test anything"


def _file_size_limit(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_previous_checkpoint_still_loads(tiny_overrides, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_overrides, run, "train.max_steps=2"), quiet=True)
    before = (run / "last.pt").read_bytes()
    command = [sys.executable, str(PACED), *_cli_args(tiny_overrides, run, "train.checkpoint_every=1")]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=_file_size_limit(len(before) // 2))  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("vast train: error:")]
    assert "cannot write checkpoint" in line and "File too large; the previous last.pt is intact" in line
    assert (run / "last.pt").read_bytes() == before
    assert load_checkpoint(run / "last.pt")["global_step"] == 2


def _torchrun(restarts):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "--max-restarts", str(restarts), "--monitor-interval", "0.5"]  # fmt: skip


@pytest.mark.slow
def test_torchrun_restarts_after_a_rank_is_killed_and_ends_as_the_uninterrupted_run(tiny_overrides, tmp_path):
    settings = [*EXACT, "train.mixup=0", "train.batch_size=2", "train.checkpoint_every=1", "data.num_workers=1"]
    reference = tmp_path / "reference"
    done = subprocess.run([*_torchrun(0), str(PACED), *_cli_args(tiny_overrides, reference, *settings)],
                          env=_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    for trial in range(3):  # repeated: a restart must never hang
        run, pids = tmp_path / f"killed{trial}", tmp_path / f"pids{trial}"
        command = [*_torchrun(2), str(PACED), *_cli_args(tiny_overrides, run, *settings)]
        proc = subprocess.Popen(command, env=_env(VAST_TEST_STEP_SECONDS="0.4", VAST_TEST_PIDS=str(pids)),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        _wait_for_rows(run / "train.csv", 2 + trial, proc)
        victim = int((pids / f"0-{trial % 2}.pid").read_text())
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        assert (pids / "1-0.pid").is_file() and (pids / "1-1.pid").is_file()  # both ranks were restarted
        _assert_same_run(reference / "last.pt", run / "last.pt")


@pytest.mark.slow
def test_under_torchrun_a_signal_to_one_rank_stops_both_at_the_same_step(tiny_overrides, tmp_path):
    settings = [*EXACT, "train.mixup=0", "train.batch_size=2"]
    run, pids = tmp_path / "run", tmp_path / "pids"
    command = [*_torchrun(0), str(PACED), *_cli_args(tiny_overrides, run, *settings)]
    proc = subprocess.Popen(command, env=_env(VAST_TEST_STEP_SECONDS="0.4", VAST_TEST_PIDS=str(pids)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for_rows(run / "train.csv", 2, proc)
    os.kill(int((pids / "0-1.pid").read_text()), signal.SIGTERM)  # rank 1 only
    _, err = proc.communicate(timeout=120)
    assert err.count("stopped at optimiser step") == 2, err[-3000:]
    stops = [line.split("stopped at optimiser step ")[1] for line in err.splitlines() if "optimiser step" in line]
    steps = {stop.split()[0] for stop in stops}
    assert len(steps) == 1  # the same step on both ranks
    assert load_checkpoint(run / "last.pt")["global_step"] == int(steps.pop())

    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_checkpoint(run / "last.pt")["global_step"] == 8
