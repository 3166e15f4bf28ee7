"""Online recognition of a frame source with a trained causal VAST: frames are taken at the model's
training frame rate, pre-processed as in evaluation, and fed to a :class:`StreamingClassifier`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vast.data.sampling import DENSE_SAMPLERS
from vast.data.transforms import to_video
from vast.engine.config import RunConfig
from vast.engine.data import eval_transform
from vast.engine.evaluate import LoadedRun
from vast.errors import ConfigError
from vast.streaming.classifier import StreamingClassifier
from vast.streaming.source import SourceFrame


@dataclass(frozen=True)
class StreamUpdate:
    """The prediction after one step of the stream."""

    step: int  # 1-based count of model steps
    frame: int  # source index of the newest frame the step took
    time: float  # that frame's time in seconds
    probabilities: torch.Tensor  # (num_classes,) softmax of the running mean's logits

    def top(self, class_names: list[str], k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable classes, best first."""
        values, indices = self.probabilities.topk(min(k, len(class_names)))
        return [(class_names[i], float(p)) for p, i in zip(values, indices)]


def frame_every(config: RunConfig, every: int | None = None) -> int:
    """Take every N-th source frame: ``every`` if given, else the run's dense sampling stride (the frame
    rate the model was trained at, for ``dense`` and ``dense_frames`` alike, when the source runs at the
    training videos' rate; at ``data.fps``, when the run set one)."""
    if every is not None:
        if every < 1:
            raise ConfigError(f"--every must be a whole number >= 1, got {every}")
        return every
    if config.data.sampler in DENSE_SAMPLERS:
        return config.data.stride
    raise ConfigError(
        f"this model was trained on TSN segments (data.sampler={config.data.sampler}), whose frame spacing "
        "depends on each training video's length; give --every N (take every N-th frame: about the training "
        "videos' frame count / data.num_frames)"
    )


class OnlineRecognizer:
    """Feeds source frames to a streaming copy of ``run.model``; :meth:`push` returns an update at every
    model step (every ``every * t_patch`` source frames), else ``None``."""

    def __init__(self, run: LoadedRun, every: int, window: int | None = None, core: nn.Module | None = None) -> None:
        # ``core``: another form of the streaming step, e.g. the int8 one (vast.streaming.quantize)
        self.classifier = StreamingClassifier(run.model, window=window, core=core)
        self.transform = eval_transform(run.config.data)
        self.every = every
        self.device = next(run.model.parameters()).device
        self._pending: list[torch.Tensor] = []

    def reset(self) -> None:
        """Start a new stream."""
        self.classifier.reset()
        self._pending.clear()

    def takes(self, frame: SourceFrame) -> bool:
        """Whether the stream uses this source frame."""
        return frame.index % self.every == 0

    @torch.inference_mode()
    def push(self, frame: SourceFrame) -> StreamUpdate | None:
        if not self.takes(frame):
            return None
        self._pending.append(self.transform(to_video(frame.rgb[None])))  # (3, 1, crop, crop)
        if len(self._pending) < self.classifier.t_patch:
            return None
        frames = torch.cat(self._pending, dim=1)[None].to(self.device)
        self._pending.clear()
        logits = self.classifier.step(frames)[0].float()
        return StreamUpdate(self.classifier.steps, frame.index, frame.time, logits.softmax(-1).cpu())
