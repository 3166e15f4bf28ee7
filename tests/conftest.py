import os

import pytest
import torch

from vast.data.moving_digits import make_moving_digits
from vast.engine.config import load_config
from vast.engine.train import train
from vast.models.affine_shift import ChannelsLastBatchNorm, DynamicAffine, StaticAffine, TemporalContext

REQUIRE_CORPUS = "VAST_REQUIRE_CORPUS"  # set to 1 by .ci/run: a missing decoding reference fails


@pytest.fixture(scope="session")
def missing_tool():
    """``missing_tool(reason)``: the test cannot run here for want of a tool (the ffmpeg command line,
    opencv-doc). It skips, saying what to install, except where ``VAST_REQUIRE_CORPUS=1`` (CI): there
    the decoder's claims must be checked, and it fails."""

    def missing(reason: str):
        if os.environ.get(REQUIRE_CORPUS) == "1":
            pytest.fail(f"{REQUIRE_CORPUS}=1, but {reason}", pytrace=False)
        pytest.skip(reason)

    return missing


@pytest.fixture(autouse=True, scope="session")
def private_vast_cache(tmp_path_factory):
    """Frame indexes go to a folder of this test session, never to the user's ~/.cache/vast
    (the environment variable reaches DataLoader workers and subprocesses too)."""
    previous = os.environ.get("VAST_CACHE_DIR")
    os.environ["VAST_CACHE_DIR"] = str(tmp_path_factory.mktemp("vast-cache"))
    yield
    if previous is None:
        os.environ.pop("VAST_CACHE_DIR", None)
    else:
        os.environ["VAST_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory):
    """A small Moving-Digits set: 16 training and 8 validation videos (real H.264 files)."""
    root = tmp_path_factory.mktemp("tiny_demo")
    return make_moving_digits(root, num_train=16, num_val=8, seed=0, workers=1, progress=False)


@pytest.fixture(scope="session")
def tiny_overrides(tiny_demo):
    """--set values that make the demo recipe train in seconds on the tiny set."""
    return [
        f"data.train={tiny_demo.train}",
        f"data.val={tiny_demo.val}",
        "data.num_frames=4",
        "data.crop_size=32",
        "data.short_side=32",
        "data.num_workers=0",
        "train.batch_size=4",
        "train.epochs=2",
        "train.log_every=1",
        "optim.warmup_epochs=0.5",
    ]


@pytest.fixture(scope="session")
def causal_run(tiny_overrides, tmp_path_factory):
    """A causal vast_nano trained for one short epoch on the tiny Moving-Digits set, with dense clips of
    4 frames at stride 2 (so a stream takes every 2nd frame): the run folder."""
    out = tmp_path_factory.mktemp("causal_run")
    overrides = [*tiny_overrides, "train.epochs=1", "model.options.causal=true", "data.sampler=dense",
                 "data.stride=2", f"train.output_dir={out}"]  # fmt: skip
    train(load_config("demo", overrides), quiet=True)
    return out


@pytest.fixture(scope="session")
def bidirectional_run(tiny_overrides, tmp_path_factory):
    """The demo recipe's vast_nano (temporal shift in both directions, TSN clips) trained for one short
    epoch on the tiny Moving-Digits set: the run folder."""
    out = tmp_path_factory.mktemp("bidirectional_run")
    train(load_config("demo", [*tiny_overrides, "train.epochs=1", f"train.output_dir={out}"]), quiet=True)
    return out


def _model_and_clips(run_folder):
    """A trained run's fp32 model in eval mode, its validation clips and its training clips, decoded as
    evaluation decodes them (one centre clip per video)."""
    from vast.data.annotations import load_annotations
    from vast.engine.data import build_eval_dataset
    from vast.engine.evaluate import load_run

    run = load_run(run_folder)
    data = run.config.data

    def clips(annotations=None):
        dataset = build_eval_dataset(data, annotations)
        return torch.stack([dataset[i][0] for i in range(len(dataset))])

    return run.model.eval(), clips(), clips(load_annotations(data.train))


@pytest.fixture(scope="session")
def model_and_clips():
    """``model_and_clips(run_folder)``: (model, validation clips, training clips) of a trained run."""
    return _model_and_clips


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised affines and fresh BatchNorm statistics non-trivial values, so that a test
    exercises every term of the forward pass."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (DynamicAffine, TemporalContext)):
                module.proj.weight.copy_(torch.randn(module.proj.weight.shape, generator=gen) * 0.05)
                module.proj.bias.copy_(torch.randn(module.proj.bias.shape, generator=gen) * 0.05)
            elif isinstance(module, StaticAffine):
                module.scale.copy_(torch.randn(module.scale.shape, generator=gen) * 0.1)
                module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, ChannelsLastBatchNorm):
                module.bn.running_mean.copy_(torch.randn(module.bn.running_mean.shape, generator=gen) * 0.1)
                module.bn.running_var.copy_(torch.rand(module.bn.running_var.shape, generator=gen) + 0.5)
    return model


@pytest.fixture(scope="session")
def randomize():
    return randomize_
