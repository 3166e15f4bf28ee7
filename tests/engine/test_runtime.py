"""Training options a model may not support: one policy, in the trainer and the study alike."""

import logging

import pytest
import torch

from vast.engine.runtime import apply_training_options
from vast.models import create_model


def test_a_vast_model_gets_both_options():
    model = create_model("vast_nano", num_classes=3)
    assert apply_training_options(model, "vast_nano", memory_lean=True, grad_checkpointing=True) == []
    assert model._memory_lean is not None and all(stage.grad_checkpointing for stage in model.stages)


def test_a_peer_without_them_is_skipped_with_one_line(caplog):
    with torch.device("meta"):
        model = create_model("tsm", num_classes=3)
    with caplog.at_level(logging.INFO, logger="vast.engine.runtime"):
        skipped = apply_training_options(model, "tsm", memory_lean=True, grad_checkpointing=False)
    assert skipped == ["memory_lean"]
    lines = [r.getMessage() for r in caplog.records if r.name == "vast.engine.runtime"]
    assert lines == ["tsm trains without train.memory_lean: the model does not support it"]


def test_an_unknown_option_is_an_error():
    with pytest.raises(ValueError, match="unknown training option 'fused'"):
        apply_training_options(torch.nn.Linear(2, 2), "linear", fused=True)
