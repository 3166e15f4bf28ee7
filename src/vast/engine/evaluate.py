"""Multi-view evaluation, prediction and the loading of a trained run.

Protocol (stated in every report): each video gives ``clips`` temporal clips (evenly spread,
deterministic) times ``crops`` spatial crops (1: centre; 3: left/centre/right along the long side);
the model's softmax probabilities are averaged over the views, then top-1 / top-5 are counted.
A broken video is counted as missing, never replaced by another one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from vast.data.annotations import Annotations, VideoRecord, load_annotations
from vast.data.dataset import BrokenVideoLog
from vast.data.sampling import TSN_SAMPLERS
from vast.deploy import package
from vast.deploy.quantize import QUANTIZED_FILE, describe_form, form_name, load_quantized
from vast.engine import reporting
from vast.engine.checkpoint import load_checkpoint
from vast.engine.config import RunConfig, config_from_dict, validate
from vast.engine.data import build_eval_dataset, eval_loader
from vast.engine.distributed import DistInfo, resolve_device
from vast.engine.metrics import AccuracyMeter
from vast.engine.runtime import as_model_input
from vast.errors import CheckpointError, ConfigError
from vast.models import create_model
from vast.models.saved_options import saved_options

_logger = logging.getLogger(__name__)


def parse_views(text: str) -> tuple[int, int]:
    """``"4x3"`` -> (4 clips, 3 crops)."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        clips, crops = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--views expects CLIPSxCROPS such as 1x1, 4x3 or 10x3; got {text!r}") from None
    if clips < 1 or crops not in (1, 3):
        raise ConfigError(f"--views: clips must be >= 1 and crops 1 or 3; got {text!r}")
    return clips, crops


def describe_protocol(config: RunConfig, clips: int, crops: int) -> str:
    data = config.data
    crop_words = "centre crop" if crops == 1 else "3 crops along the long side"
    sampling = (
        f"TSN sampling of {data.num_frames} segments"
        if data.sampler in TSN_SAMPLERS
        else f"dense clips of {data.num_frames} frames at stride {data.stride}"
    )
    if data.sampler.endswith("_frames"):
        sampling += ", by frame index"
    elif data.fps:
        sampling += f" at {data.fps:g} fps"
    views = "view" if clips * crops == 1 else "views"
    return (
        f"{clips} clip{'s' if clips > 1 else ''} x {crops} crop{'s' if crops > 1 else ''} = {clips * crops} {views} "
        f"per video ({sampling}, {data.crop_size} px {crop_words}, short side {data.short_side or 'crop / 0.875'}); "
        f"softmax scores averaged over views"
    )


@dataclass
class LoadedRun:
    """A trained model with the configuration and class names of its run."""

    model: nn.Module
    config: RunConfig
    class_names: list[str]
    checkpoint_path: Path
    weights: str  # "model" or "ema"; "packaged" for a model folder's


def load_run(
    checkpoint: str | Path, device: str = "cpu", ema: bool = False, fuse: bool = False, compile: bool = True
) -> LoadedRun:
    """Rebuild the model of a training checkpoint (``last.pt`` / ``best.pt`` or a run folder), or of a
    model folder written by ``vast export --format dir`` (its configuration rebuilt from ``config.json``:
    the model, and the data settings that make the evaluation transforms the run's).

    ``fuse`` rebuilds it with ``fuse_for_inference`` (BatchNorm folded into the projections, oneDNN
    matmuls on the CPU): faster, the same outputs up to float rounding, inference only. A model folder
    exported with ``--quantize`` gives its int8 program (compiled on first use unless ``compile=False``).
    """
    path = Path(checkpoint)
    run = _load_package(path, ema, compile) if package.is_package(path) else _load_checkpoint(path, ema)
    run.model.to(resolve_device(device)).eval()
    if fuse:
        if not hasattr(run.model, "fuse_for_inference"):  # a peer, or a folder's int8 program
            raise ConfigError(f"{run.config.model.name} cannot be fused for inference; drop --fuse")
        run.model.fuse_for_inference()
    return run


def _load_checkpoint(path: Path, ema: bool) -> LoadedRun:
    if path.is_dir() and not (path / "last.pt").exists():
        raise CheckpointError(
            f"{path} holds neither last.pt (a run folder) nor {package.CONFIG_FILE} (a model folder); "
            f"give a checkpoint file, a run folder or a folder written by `vast export --format dir`"
        )
    state = load_checkpoint(path)
    config = config_from_dict(state["config"])
    config.model.options = saved_options(config.model.name, config.model.options)
    weights = "ema" if ema else "model"
    if ema and not state.get("ema"):
        raise ConfigError(f"{path} holds no EMA weights (trained without train.ema); drop --ema")
    model = create_model(config.model.name, num_classes=int(state["num_classes"]), **config.model.options)
    model.load_state_dict(state[weights])
    return LoadedRun(model, config, list(state["class_names"]), path if path.is_file() else path / "last.pt", weights)


def _load_package(path: Path, ema: bool, compile: bool = True) -> LoadedRun:
    if ema:
        raise ConfigError(f"{path} is a model folder with one set of weights; drop --ema")
    packaged = package.read_package(path)
    model_section = {"name": packaged.architecture, "num_classes": packaged.num_classes, "options": packaged.model_args}
    config = config_from_dict({"model": model_section, "data": packaged.data_settings()})
    validate(config)
    if packaged.quantization:  # the folder's int8 program, as it was exported
        record = packaged.quantization
        model = load_quantized(path / record.get("file", QUANTIZED_FILE), record, compile=compile)
        return LoadedRun(model, config, packaged.label_names, path / record.get("file", QUANTIZED_FILE), "packaged")
    model = package.load_package(path)
    return LoadedRun(model, config, packaged.label_names, path / package.WEIGHTS_FILE, "packaged")


@dataclass
class EvalResult:
    protocol: str
    views: str
    videos: int
    missing: int
    top1: float
    top5: float
    per_class: dict[str, float]
    confusion: list[list[int]]
    missing_paths: list[str] = field(default_factory=list)
    checkpoint: str = ""  # the file the evaluated weights came from (resolved path)
    weights: str = ""  # "model" or "ema"
    data: str = ""  # the annotations evaluated on
    form: str = "fp32"  # "int8-dynamic" / "int8-static" for a quantised model (vast.deploy.quantize)
    form_detail: str = "fp32"  # how it was quantised

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@torch.no_grad()
def evaluate(
    run: LoadedRun,
    annotations: Annotations | None = None,
    clips: int = 1,
    crops: int = 1,
    batch_size: int = 8,
    workers: int = 2,
    progress: bool = True,
) -> EvalResult:
    """Multi-view accuracy of ``run`` on ``annotations`` (default: the run's validation set)."""
    config = run.config
    device = next(run.model.parameters()).device
    dataset = build_eval_dataset(config.data, annotations, clips=clips, crops=crops)
    loader = eval_loader(dataset, batch_size, workers, DistInfo(device=device))
    meter, missing = AccuracyMeter(len(run.class_names)), BrokenVideoLog()
    for batch in tqdm(loader, desc=f"eval {clips}x{crops}", disable=not progress, leave=False):
        missing.add(batch.broken)
        if batch.labels.numel() == 0:
            continue
        meter.add(view_averaged_probabilities(run.model, batch.clips.to(device), multi_view=clips * crops > 1),
                  batch.labels)  # fmt: skip
    return EvalResult(
        protocol=describe_protocol(config, clips, crops),
        views=f"{clips}x{crops}",
        videos=meter.videos,
        missing=missing.count,
        top1=meter.top1,
        top5=meter.top5,
        per_class=meter.per_class(run.class_names),
        confusion=meter.confusion.tolist(),
        missing_paths=missing.paths,
        checkpoint=str(run.checkpoint_path.resolve()),
        weights=run.weights,
        data=config.data.val if annotations is None else str(annotations.source or ""),
        form=form_name(run.model),
        form_detail=describe_form(run.model),
    )


def view_averaged_probabilities(model: nn.Module, clips: torch.Tensor, multi_view: bool) -> torch.Tensor:
    """Softmax probabilities averaged over views: ``clips`` is ``(B, V, C, T, H, W)`` in multi-view
    mode, else ``(B, C, T, H, W)``."""
    if not multi_view:
        return model(as_model_input(model, clips)).float().softmax(dim=-1)
    batch, views = clips.shape[:2]
    probs = model(as_model_input(model, clips.flatten(0, 1))).float().softmax(dim=-1)
    return probs.view(batch, views, -1).mean(dim=1)


def write_eval_report(result: EvalResult, class_names: list[str], out_dir: str | Path) -> tuple[Path, Path]:
    """``eval_<views>.json`` and ``confusion_<views>.png`` in ``out_dir`` (``eval_<views>_int8-static.json``
    and so on for a quantised model, beside the fp32 ones)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = result.views + ("" if result.form == "fp32" else f"_{result.form}")
    json_path = out_dir / f"eval_{name}.json"
    json_path.write_text(result.to_json())
    png = reporting.plot_confusion(
        np.asarray(result.confusion),
        class_names,
        out_dir / f"confusion_{name}.png",
        title=f"{result.views} views{'' if result.form == 'fp32' else ', ' + result.form}: top-1 {result.top1:.1f} %",
    )
    return json_path, png


@dataclass
class SplitMean:
    """UCF101 / HMDB51's reported figure: the accuracies of the official splits' runs, averaged."""

    top1: float
    top5: float
    top1_per_split: list[float]
    protocol: str
    missing: int  # broken test videos over all splits: the protocol counts every one of them
    reports: list[str]

    def describe(self) -> str:
        splits = ", ".join(f"{top1:.2f}" for top1 in self.top1_per_split)
        return (
            f"top-1 {self.top1:.2f} % (mean of {len(self.reports)} splits: {splits}), top-5 {self.top5:.2f} %; "
            f"{self.missing} test videos missing; {self.protocol}"
        )


def mean_over_splits(reports: list[str | Path]) -> SplitMean:
    """Average the ``eval_<views>.json`` reports of ``vast eval``, one per split: the plain mean of the
    splits' top-1 (and top-5), as UCF101 and HMDB51 results are reported. The reports must share
    one protocol (views, sampling, crops): a mean over different protocols measures nothing."""
    if not reports:
        raise ConfigError("give the eval_<views>.json report of each split's run")
    results = [_read_eval_json(Path(report)) for report in reports]
    protocols = sorted({result["protocol"] for result in results})
    if len(protocols) > 1:
        raise ConfigError(
            f"the reports were made with {len(protocols)} protocols ({' | '.join(protocols)}); evaluate every "
            "split with the same --views"
        )
    top1 = [float(result["top1"]) for result in results]
    return SplitMean(
        top1=sum(top1) / len(top1),
        top5=sum(float(result["top5"]) for result in results) / len(results),
        top1_per_split=top1,
        protocol=protocols[0],
        missing=sum(int(result["missing"]) for result in results),
        reports=[str(report) for report in reports],
    )


def _read_eval_json(path: Path) -> dict:
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read an eval report ({exc}); give the eval_<views>.json of a run") from None
    if not isinstance(result, dict) or not {"protocol", "top1", "top5", "missing"} <= result.keys():
        raise ConfigError(f"{path}: not a report of `vast eval` (needs protocol, top1, top5, missing)")
    return result


@dataclass
class Prediction:
    video: str
    top: list[tuple[str, float]]  # (class name, probability), best first


@torch.no_grad()
def predict(
    run: LoadedRun, videos: list[str | Path], top_k: int = 5, clips: int = 1, crops: int = 1
) -> list[Prediction]:
    """Top-k classes of each video (view-averaged softmax probabilities)."""
    missing = [str(v) for v in videos if not Path(v).is_file()]
    if missing:
        raise FileNotFoundError(f"video not found: {missing[0]}")
    records = [VideoRecord(Path(v), 0) for v in videos]
    annotations = Annotations(records, run.class_names)
    dataset = build_eval_dataset(run.config.data, annotations, clips=clips, crops=crops)
    dataset.on_error = "raise"  # a single video the user named: say why it cannot be read
    device = next(run.model.parameters()).device
    out = []
    for index, video in enumerate(videos):
        clip, _, _ = dataset[index]
        probs = view_averaged_probabilities(run.model, clip.unsqueeze(0).to(device), multi_view=clips * crops > 1)[0]
        k = min(top_k, len(run.class_names))
        values, indices = probs[: len(run.class_names)].topk(k)
        out.append(Prediction(str(video), [(run.class_names[i], float(p)) for p, i in zip(values, indices)]))
    return out


def annotations_for_eval(run: LoadedRun, path: str | None, root: str | None) -> Annotations:
    """The annotations to evaluate on: ``path`` if given, else the run's validation annotations."""
    data = run.config.data
    target = path or data.val
    if not target:
        raise ConfigError("the run has no validation set; give one with --data ANNOTATIONS")
    annotations = load_annotations(
        target,
        root=root if root is not None else (data.root or None),
        fmt=data.format,
        split=data.split or None,
        subset="test",  # an official split's test videos (other formats ignore it)
    )
    if annotations.class_names and len(annotations.class_names) != len(run.class_names):
        raise ConfigError(
            f"{target} has {len(annotations.class_names)} classes but the model was trained on "
            f"{len(run.class_names)}; evaluate on annotations with the same classes"
        )
    return annotations
