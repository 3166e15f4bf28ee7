import pytest

from vast.data.moving_digits import make_moving_digits


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
