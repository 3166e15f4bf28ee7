"""Early recognition (`vast eval --online`): top-1 after each fraction of every video, against the
offline model run on each prefix of frames decoded independently."""

import json
import math

import av
import numpy as np
import pytest
import torch

from vast.cli.main import main
from vast.data.annotations import load_annotations
from vast.data.transforms import build_eval_transform, to_video
from vast.engine.evaluate import load_run
from vast.streaming.early import early_recognition, prefix_lengths


@pytest.mark.parametrize(
    ("frames", "t_patch", "expected"),
    [(16, 1, [4, 8, 12, 16]), (8, 1, [2, 4, 6, 8]), (5, 1, [2, 3, 4, 5]), (8, 2, [2, 4, 6, 8]), (5, 2, [2, 4, 4, 4]),
     (1, 1, [1, 1, 1, 1])],
)  # fmt: skip
def test_prefix_lengths_are_whole_steps_covering_each_fraction(frames, t_patch, expected):
    assert prefix_lengths(frames, t_patch) == expected


def _reference_top1(run, annotations, every):
    """Decode every video with PyAV, take every N-th frame, run the offline model on each prefix."""
    data = run.config.data
    transform = build_eval_transform(data.crop_size, short_side=data.short_side, mean=data.mean, std=data.std)
    hits = np.zeros(4)
    for record in annotations.records:
        with av.open(str(record.path)) as container:
            frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])[::every]
        clip = transform(to_video(frames))[None]
        for i, p in enumerate((0.25, 0.5, 0.75, 1.0)):
            with torch.no_grad():
                logits = run.model(clip[:, :, : math.ceil(p * len(frames))])
            hits[i] += int(logits.argmax()) == record.label
    return list(100 * hits / len(annotations.records))


@pytest.mark.parametrize("causal", [True, False])
def test_top1_after_each_fraction_matches_the_offline_model_on_each_prefix(causal, causal_run, bidirectional_run):
    run = load_run(causal_run if causal else bidirectional_run)
    annotations = load_annotations(run.config.data.val)
    result = early_recognition(run, annotations, every=2, progress=False)
    assert result.streamed is causal and result.videos == len(annotations.records) and result.missing == 0
    assert result.top1 == pytest.approx(_reference_top1(run, annotations, 2))


def test_vast_eval_online_prints_the_curve_and_writes_its_plot(causal_run, tmp_path, capsys):
    assert main(["eval", str(causal_run), "--online", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for p in (25, 50, 75, 100):
        assert f"top-1 after {p:3d} % of each video" in printed
    assert "one frame in 2 from the first" in printed  # the run's dense stride
    saved = json.loads((tmp_path / "early_recognition.json").read_text())
    assert saved["fractions"] == [0.25, 0.5, 0.75, 1.0] and saved["videos"] == 8 and saved["streamed"]
    assert (tmp_path / "early_recognition.png").read_bytes()[:4] == b"\x89PNG"

