"""Early recognition: top-1 after the first 25, 50, 75 and 100 % of each video (`vast eval --online`).

Protocol: each validation video is read from its first frame at the model's training frame rate (every
N-th frame, as `vast stream` takes them), pre-processed as in evaluation, and the prediction after the
first ``ceil(p * T)`` of those ``T`` frames is scored, for each fraction ``p``. A causal model runs as
a stream (one pass per video, :class:`StreamingClassifier`); any other VAST model is run again on each
prefix, which is what it would have to do online.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vast.data.annotations import Annotations
from vast.data.decoding import BrokenVideoError, open_video
from vast.data.transforms import to_video
from vast.engine.data import eval_transform
from vast.engine.evaluate import LoadedRun
from vast.errors import ConfigError
from vast.models.affine_shift import AffineShiftTransformer
from vast.streaming.classifier import NotStreamableError, StreamingClassifier

FRACTIONS = (0.25, 0.5, 0.75, 1.0)


@dataclass
class EarlyRecognition:
    protocol: str
    fractions: list[float]
    top1: list[float]  # per fraction, in %
    videos: int
    missing: int
    streamed: bool  # True: one causal pass per video; False: the model re-run on each prefix

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def prefix_lengths(frames: int, t_patch: int, fractions: tuple[float, ...] = FRACTIONS) -> list[int]:
    """Frames seen after each fraction of a ``frames``-frame video: ``ceil(p * frames)``, rounded up to
    whole steps of ``t_patch`` frames (and at least one step)."""
    lengths = []
    for p in fractions:
        seen = max(1, math.ceil(p * frames - 1e-9))
        lengths.append(min(max(t_patch, math.ceil(seen / t_patch) * t_patch), frames // t_patch * t_patch))
    return lengths


@torch.inference_mode()
def early_recognition(
    run: LoadedRun, annotations: Annotations, every: int, fractions: tuple[float, ...] = FRACTIONS,
    progress: bool = True,
) -> EarlyRecognition:  # fmt: skip
    """Top-1 of ``run.model`` after each fraction of every video of ``annotations``."""
    model = run.model
    if not isinstance(model, AffineShiftTransformer) or not model.video:
        raise ConfigError(f"early recognition takes a VAST video model; {run.config.model.name} is not one")
    data = run.config.data
    transform = eval_transform(data)
    stream = _streaming_or_none(model)
    device = next(model.parameters()).device
    hits, videos, missing = np.zeros(len(fractions)), 0, 0
    for record in tqdm(annotations.records, desc="early recognition", disable=not progress, leave=False):
        try:
            clip = transform(to_video(_frames(record.path, every)))[None].to(device)  # (1, 3, T, h, w)
        except BrokenVideoError:
            missing += 1
            continue
        lengths = prefix_lengths(clip.shape[2], model.t_patch, fractions)
        if lengths[-1] < model.t_patch:
            missing += 1
            continue
        predictions = _stream(stream, clip, lengths) if stream else [model(clip[:, :, :k])[0] for k in lengths]
        hits += [int(p.argmax()) == record.label for p in predictions]
        videos += 1
    streamed = stream is not None
    return EarlyRecognition(
        protocol=_protocol(every, data.crop_size, streamed), fractions=list(fractions),
        top1=[100.0 * h / max(videos, 1) for h in hits], videos=videos, missing=missing, streamed=streamed,
    )  # fmt: skip


def _streaming_or_none(model: AffineShiftTransformer) -> StreamingClassifier | None:
    try:
        return StreamingClassifier(model)
    except NotStreamableError:
        return None


def _frames(path: Path, every: int) -> np.ndarray:
    with open_video(path) as video:
        return video.get_frames(range(0, video.num_frames, every))


def _stream(stream: StreamingClassifier, clip: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
    stream.reset()
    by_length = {}
    for end in range(stream.t_patch, lengths[-1] + 1, stream.t_patch):
        logits = stream.step(clip[:, :, end - stream.t_patch : end])
        if end in lengths:
            by_length[end] = logits[0]
    return [by_length[k] for k in lengths]


def _protocol(every: int, crop: int, streamed: bool) -> str:
    how = "one causal stream per video" if streamed else "the model re-run on each prefix"
    rate = "every frame" if every == 1 else f"one frame in {every}"
    return (
        f"{rate} from the first, {crop} px centre crop; top-1 of the prediction after the first "
        f"ceil(p x T) of a video's T frames ({how})"
    )


def write_early_recognition(result: EarlyRecognition, out_dir: str | Path) -> tuple[Path, Path]:
    """``early_recognition.json`` and ``early_recognition.png`` (top-1 against the fraction seen)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "early_recognition.json"
    json_path.write_text(result.to_json())
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot([100 * p for p in result.fractions], result.top1, marker="o")
    for p, top1 in zip(result.fractions, result.top1):
        ax.annotate(f"{top1:.1f}", (100 * p, top1), textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set(xlabel="% of the video seen", ylabel="top-1 (%)", ylim=(0, 105), title="early recognition")
    ax.set_xticks([100 * p for p in result.fractions])
    ax.grid(alpha=0.3)
    fig.tight_layout()
    png = out_dir / "early_recognition.png"
    fig.savefig(png)
    plt.close(fig)
    return json_path, png
