"""Atomic checkpoint writes and RNG capture."""

import errno
import os
import random

import numpy as np
import pytest
import torch

from vast.engine import checkpoint as ckpt
from vast.errors import CheckpointError


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.atomic_save({"model": {"w": torch.ones(3)}, "step": 1}, path)
    before = path.read_bytes()

    def broken_save(obj, handle):
        handle.write(b"partial bytes of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointError, match=r"No space left on device; the previous last\.pt is intact"):
        ckpt.atomic_save({"model": {"w": torch.zeros(3)}, "step": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    monkeypatch.undo()
    assert ckpt.load_checkpoint(path)["step"] == 1


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    state = ckpt.capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    ckpt.atomic_save({"model": {}, "rng": state}, tmp_path / "c.pt")
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    ckpt.restore_rng_state(ckpt.load_checkpoint(tmp_path / "c.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_text("junk")
    with pytest.raises(CheckpointError, match="cannot read"):
        ckpt.load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a vast training checkpoint"):
        ckpt.load_checkpoint(tmp_path / "other.pt")
    run = tmp_path / "run"
    run.mkdir()
    ckpt.atomic_save({"model": {}}, run / "last.pt")
    assert ckpt.load_checkpoint(run) == {"model": {}}
