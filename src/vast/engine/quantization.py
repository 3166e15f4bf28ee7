"""Int8 copies of a loaded run (``--quantize`` of `vast eval`, `vast predict`, `vast export`): the clip
shape from the run's data settings, and the calibration clips of static quantisation from its data."""

from __future__ import annotations

import torch

from vast.data.annotations import Annotations, load_annotations
from vast.data.dataset import BrokenVideo
from vast.deploy.quantize import MODES, quantize
from vast.engine.data import build_eval_dataset, read_annotations
from vast.engine.evaluate import LoadedRun
from vast.errors import ConfigError

DEFAULT_CALIBRATION_CLIPS = 32


def clip_shape(run: LoadedRun) -> tuple[int, int, int, int]:
    """``(C, T, H, W)`` of one evaluation clip of the run."""
    data = run.config.data
    return 3, data.num_frames, data.crop_size, data.crop_size


def calibration_clips(run: LoadedRun, clips: int, annotations: Annotations | None = None) -> list[torch.Tensor]:
    """``clips`` centre-cropped clips, in batches of up to 8, from ``annotations`` (default: the run's
    training set), spread evenly over it so that every class can be seen."""
    if clips < 1:
        raise ConfigError(f"--calibration-clips must be at least 1, got {clips}")
    data = run.config.data
    if annotations is None:
        if not data.train:
            raise ConfigError(
                "static quantisation calibrates on training clips, and this model names no training set; "
                "give --calibration ANNOTATIONS"
            )
        annotations = read_annotations(data, "train")
    dataset = build_eval_dataset(data, annotations)
    step = max(1, len(dataset) // clips)
    picked = [dataset[i] for i in range(0, len(dataset), step)][:clips]
    tensors = [item[0] for item in picked if not isinstance(item, BrokenVideo)]  # broken videos are skipped
    if not tensors:
        raise ConfigError(f"no readable calibration video in {annotations.source or 'the training set'}")
    batches = torch.stack(tensors).split(8)
    return list(batches)


def calibration_for(run: LoadedRun, mode: str, clips: int, calibration: str | None) -> list[torch.Tensor] | None:
    """The calibration batches ``mode`` needs: ``clips`` clips of ``calibration`` (default: the run's
    training set) for ``static``, none for ``dynamic``, which refuses a calibration set."""
    if mode not in MODES:
        raise ConfigError(f"unknown --quantize mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "dynamic":
        if calibration is not None:
            raise ConfigError("--calibration is for --quantize static; dynamic quantisation needs no clips")
        return None
    annotations = load_annotations(calibration, root=run.config.data.root or None) if calibration else None
    return calibration_clips(run, clips, annotations)


def quantize_run(
    run: LoadedRun,
    mode: str,
    clips: int = DEFAULT_CALIBRATION_CLIPS,
    calibration: str | None = None,
    compile: bool = True,
) -> LoadedRun:
    """``run`` with its model replaced by an int8 copy (:func:`vast.deploy.quantize`) for its clip shape."""
    batches = calibration_for(run, mode, clips, calibration)
    if next(run.model.parameters()).device.type != "cpu":
        raise ConfigError("int8 inference runs on the CPU: drop --device (or drop --quantize)")
    example = torch.randn((1, *clip_shape(run)), generator=torch.Generator().manual_seed(0))
    run.model = quantize(run.model.eval(), mode, example=example, calibration=batches, compile=compile)
    return run
