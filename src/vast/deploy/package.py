"""Packaged model folders: ``config.json`` in timm's hub form, ``model.safetensors`` and a model card.

``vast export CHECKPOINT --format dir OUT`` (:func:`write_package`) writes

* ``config.json``, as timm's ``save_for_hf`` / ``push_to_hf_hub`` write it: ``architecture``,
  ``num_classes``, ``num_features``, ``global_pool``, ``label_names`` (the class names), ``model_args``
  (the run's ``model.options``: with the architecture they rebuild the exact model) and
  ``pretrained_cfg``, the evaluation preprocessing: timm's ``input_size`` ((C, T, H, W) for video),
  ``crop_pct``, ``crop_mode``, ``interpolation``, ``mean`` and ``std``, and vast's ``num_frames``,
  ``frame_sampler`` (``tsn``, ``dense``, ``tsn_frames`` or ``dense_frames``), ``frame_stride``,
  ``frame_fps`` and ``short_side`` (the run's ``data`` keys;
  a short side of 0 means crop / 0.875 for one crop, the crop for three);
* ``model.safetensors``: the weights (the model's, or the EMA's with ``--ema``);
* ``README.md``: a model card: params, GMACs, the run's own evaluations, limitations and the recipe.

Reading a folder is :mod:`vast.models.folder` (``vast.create_model(folder)``, :func:`load_package`); its
names are importable from here too, as before the split.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import save_file
from torch import nn

from vast.deploy.quantize import QUANTIZED_FILE, QuantizedModel, quantization_record, save_quantized
from vast.errors import ConfigError
from vast.models.flops import count_flops
from vast.models.folder import CONFIG_FILE, WEIGHTS_FILE, PackageConfig, is_package, load_package, read_package
from vast.models.saved_options import pin_options

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "FORMAT",
    "WEIGHTS_FILE",
    "PackageConfig",
    "hub_config",
    "is_package",
    "load_package",
    "model_card",
    "model_input_shape",
    "read_package",
    "write_package",
]

CARD_FILE = "README.md"
FORMAT = "dir"  # the name of this form in `vast export --format`

# Keys of a model's pretrained_cfg that a package does not carry: where published weights live and
# their licence (a package's weights are the folder's, trained on the run's data, under its terms),
# the architecture (top level in the hub form) and sizes that belong to the default input only.
_DROPPED_CFG_KEYS = frozenset(
    {
        "url",
        "file",
        "state_dict",
        "hf_hub_id",
        "hf_hub_filename",
        "source",
        "tag",
        "license",
        "architecture",
        "pool_size",
        "test_input_size",
        "test_crop_pct",
        "test_pool_size",
        "label_names",
    }
)


def model_input_shape(model: nn.Module, num_frames: int, crop_size: int) -> tuple[int, ...]:
    """One view as ``model`` takes it: ``(1, C, T, H, W)``, or ``(1, C, H, W)`` for an image model."""
    channels = int(getattr(model, "in_chans", 3))
    if getattr(model, "video", True):
        return (1, channels, num_frames, crop_size, crop_size)
    return (1, channels, crop_size, crop_size)


def write_package(
    out: str | Path,
    model: nn.Module,
    config: Mapping[str, Any],
    class_names: Sequence[str],
    *,
    weights: str = "model",
    checkpoint: str | Path | None = None,
    quantized: QuantizedModel | None = None,
) -> Path:
    """Write ``model`` as the model folder ``out``: ``config.json``, ``model.safetensors``, ``README.md``.

    ``config`` is the run's configuration as ``RunConfig.to_dict()`` gives it (``model`` and ``data``
    sections); ``weights`` says which weights these are (``model`` or ``ema``) and ``checkpoint`` the
    file they came from: the card reports the evaluations (``eval_*.json``) in its folder. ``quantized``
    (an int8 copy of ``model``) is written beside the fp32 weights (``model-int8.pt2``), and
    ``config.json`` says how it was quantised (``quantization``).
    """
    out = Path(out)
    _check_destination(out)
    config = json.loads(json.dumps(config))  # plain lists and dicts, as JSON and YAML write them
    data = config["data"]
    meta = copy.deepcopy(model).to("meta").eval()
    shape = model_input_shape(model, int(data["num_frames"]), int(data["crop_size"]))
    gmacs, params = count_flops(meta, shape)
    with torch.no_grad():
        num_classes = int(meta(torch.empty(shape, device="meta")).shape[-1])
    hub = hub_config(model, config, class_names, num_classes)
    out.mkdir(parents=True, exist_ok=True)
    if quantized is not None:
        save_quantized(quantized, out / QUANTIZED_FILE)
        hub["quantization"] = quantization_record(quantized)
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    (out / CONFIG_FILE).write_text(json.dumps(hub, indent=2) + "\n")
    reports = read_eval_reports(Path(checkpoint).parent) if checkpoint is not None else []
    facts = CardFacts(params, gmacs, shape, weights, Path(checkpoint) if checkpoint is not None else None)
    (out / CARD_FILE).write_text(model_card(hub, config, reports, facts))
    return out


def _check_destination(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give a folder for --format dir")
    if (out / "last.pt").exists():
        raise ConfigError(f"{out} is a run folder (it holds last.pt); give another folder for the model")


def hub_config(
    model: nn.Module, config: Mapping[str, Any], class_names: Sequence[str], num_classes: int
) -> dict[str, Any]:
    """``config.json``: timm's hub form for ``model`` trained with the run configuration ``config``."""
    hub: dict[str, Any] = {"architecture": config["model"]["name"], "num_classes": num_classes}
    if getattr(model, "num_features", None) is not None:
        hub["num_features"] = int(model.num_features)
    if isinstance(getattr(model, "global_pool", None), str) and model.global_pool:
        hub["global_pool"] = model.global_pool
    hub["label_names"] = list(class_names)
    hub["model_args"] = pin_options(config["model"]["name"], dict(config["model"].get("options") or {}))
    hub["pretrained_cfg"] = pretrained_cfg_for(model, config["data"], num_classes)
    return hub


def pretrained_cfg_for(model: nn.Module, data: Mapping[str, Any], num_classes: int) -> dict[str, Any]:
    """The model's ``pretrained_cfg`` with the run's evaluation preprocessing (the ``data`` section)."""
    own = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg = {k: v for k, v in own.items() if k not in _DROPPED_CFG_KEYS and v is not None}
    crop, short = int(data["crop_size"]), int(data["short_side"])
    one_crop_side = short or math.floor(crop / 0.875 + 0.5)  # as the evaluation transform resolves 0
    cfg.update(
        input_size=list(model_input_shape(model, int(data["num_frames"]), crop)[1:]),
        num_frames=int(data["num_frames"]),
        frame_sampler=data["sampler"],
        frame_stride=int(data["stride"]),
        frame_fps=float(data.get("fps", 0.0)),
        short_side=short,
        crop_pct=crop / one_crop_side,
        crop_mode="center",
        interpolation="bilinear",
        mean=list(data["mean"]),
        std=list(data["std"]),
        num_classes=num_classes,
        fixed_input_size=False,
    )
    return cfg


def read_eval_reports(folder: Path) -> list[dict[str, Any]]:
    """The ``eval_<views>.json`` reports that ``vast eval`` wrote into ``folder``, with their file names."""
    reports = []
    for path in sorted(folder.glob("eval_*.json")):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and {"views", "protocol", "videos", "top1", "top5"} <= report.keys():
            reports.append({**report, "file": path.name})
    return reports


# ---- the model card -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CardFacts:
    """What the card states beyond ``config.json``: complexity and where the weights came from."""

    params: int
    gmacs: float
    input_shape: tuple[int, ...]
    weights: str
    checkpoint: Path | None


def model_card(
    hub: Mapping[str, Any], config: Mapping[str, Any], reports: Sequence[Mapping[str, Any]], facts: CardFacts
) -> str:
    """``README.md``: the model card, every number taken from the model, the run and its reports."""
    sections = [
        _front_matter(hub),
        _summary(hub, facts),
        _preprocessing(hub["pretrained_cfg"], _is_image(hub)),
        _evaluation(reports, facts),
        _limitations(hub, config, evaluated=bool(reports)),
        _usage(hub),
        "## Recipe\n\nThe run's resolved configuration (`vast train` recipe):\n\n"
        f"```yaml\n{yaml.safe_dump(dict(config), sort_keys=False).rstrip()}\n```",
    ]
    return "\n\n".join(sections) + "\n"


def _is_image(hub: Mapping[str, Any]) -> bool:
    return len(hub["pretrained_cfg"]["input_size"]) == 3


def _front_matter(hub: Mapping[str, Any]) -> str:
    task = "image-classification" if _is_image(hub) else "video-classification"
    library = "library_name: timm\n" if hub["architecture"].startswith("ast_") else ""
    return f"---\n{library}pipeline_tag: {task}\ntags:\n- vast\n- {task}\n---"


def _family(architecture: str) -> str:
    if architecture.startswith("vast_"):
        return "VAST, an attention-free video shift transformer"
    if architecture.startswith("ast_"):
        return "AST, an attention-free image shift transformer"
    return "a video classifier of vast's study peers"


def _summary(hub: Mapping[str, Any], facts: CardFacts) -> str:
    names = hub["label_names"]
    shown = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
    source = facts.checkpoint.name if facts.checkpoint is not None else "the trained model"
    weights = {"ema": "EMA weights", "model": "weights"}.get(facts.weights, f"{facts.weights} weights")
    rows = [
        ("architecture", f"`{hub['architecture']}`"),
        ("model options (`model_args`)", f"`{json.dumps(hub['model_args'])}`" if hub["model_args"] else "none"),
        ("params", f"{facts.params / 1e6:.2f} M ({facts.params:,})"),
        (
            "GMACs",
            f"{facts.gmacs:.3f} per view of {'x'.join(map(str, facts.input_shape))} "
            "(multiply-adds, torch.utils.flop_counter; the shift counts 0; GFLOPs = 2 x GMACs)",
        ),
        ("weights", f"the {weights} of `{source}`"),
        ("classes", f"{hub['num_classes']}: {shown}"),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return (
        f"# {hub['architecture']}, {hub['num_classes']} classes\n\n"
        f"{_family(hub['architecture'])}, trained with `vast train` and packaged with "
        f"`vast export --format dir`.\n\n| | |\n|---|---|\n{table}"
    )


def _preprocessing(cfg: Mapping[str, Any], is_image: bool) -> str:
    crop, short, frames = cfg["input_size"][-1], cfg["short_side"], cfg["num_frames"]
    if is_image:
        frames_line = "one image (a one-frame clip)"
    elif cfg["frame_sampler"] in ("tsn", "tsn_frames"):
        frames_line = f"{frames} frames per clip, TSN sampling: the centre frame of each of {frames} equal segments"
    else:
        rate = f" at {cfg['frame_fps']:g} fps" if cfg.get("frame_fps") else ""
        frames_line = (
            f"{frames} frames per clip, dense sampling: frames {cfg['frame_stride']} apart{rate}, "
            "from the middle of the video"
        )
    if not is_image:
        by_index = str(cfg["frame_sampler"]).endswith("_frames")
        frames_line += " (by frame index)" if by_index else " (even in presentation time)"
    side = (
        f"{short} px"
        if short
        else f"{math.floor(crop / 0.875 + 0.5)} px (crop / 0.875) for one crop, {crop} px for three"
    )
    return (
        "## Input and preprocessing\n\n"
        "The evaluation transform of the run, stored in `config.json` (`pretrained_cfg`); `vast predict` "
        "and `vast eval` apply it to a folder as to the run's checkpoint:\n\n"
        f"- {frames_line}\n"
        f"- short side resized to {side} (bilinear, antialiased), then a {crop} x {crop} centre crop\n"
        f"- RGB scaled to [0, 1], normalised with mean {tuple(cfg['mean'])} and std {tuple(cfg['std'])}\n"
        f"- input tensor {'(B, 3, H, W)' if is_image else '(B, 3, T, H, W)'}"
    )


def _evaluation(reports: Sequence[Mapping[str, Any]], facts: CardFacts) -> str:
    if not reports:
        return (
            "## Evaluation\n\nNot evaluated: there was no `eval_*.json` beside the checkpoint when it was "
            "packaged. `vast eval FOLDER --data ANNOTATIONS --views 4x3` evaluates this folder."
        )
    rows = [
        f"| {r['views']} | {r['top1']:.2f} | {r['top5']:.2f} | {r['videos']} ({r.get('missing', 0)}) | "
        f"{_evaluated_weights(r, facts)} | {r.get('data') or 'not recorded'} | `{r['file']}` |"
        for r in reports
    ]
    protocols = "\n".join(f"- {r['views']}: {r['protocol']}" for r in reports)
    return (
        "## Evaluation\n\nFrom the `vast eval` reports beside the checkpoint (top-1 / top-5 in %, "
        "softmax averaged over the views):\n\n"
        "| views | top-1 | top-5 | videos (missing) | weights evaluated | data | report |\n"
        "|---|---:|---:|---:|---|---|---|\n" + "\n".join(rows) + f"\n\nProtocols:\n\n{protocols}"
    )


def _evaluated_weights(report: Mapping[str, Any], facts: CardFacts) -> str:
    """Whether a report evaluated the packaged weights; older reports do not say."""
    if not report.get("checkpoint"):
        return "not recorded"
    path = Path(report["checkpoint"])
    same_file = facts.checkpoint is not None and path == facts.checkpoint.resolve()
    same = same_file and report.get("weights") == facts.weights
    return "these" if same else f"others: {report.get('weights', '?')} weights of `{path.name}`"


def _limitations(hub: Mapping[str, Any], config: Mapping[str, Any], evaluated: bool) -> str:
    data = config["data"]
    trained_on = f"Trained on `{data['train']}`" if data.get("train") else "Training data not recorded"
    lines = [
        f"- {trained_on}: it knows only these {hub['num_classes']} classes, and input unlike that data "
        "(other resolutions, frame rates, content) is untested.",
    ]
    if evaluated:
        lines.append(
            "- The accuracy above is on the data named in each report, usually the run's own "
            "validation split, not an independent test set."
        )
    if _is_image(hub):
        lines.append("- An image model: one frame per input, no temporal modelling.")
    elif hub["model_args"].get("causal"):
        lines.append(
            "- Causal: each output depends on the current and earlier frames only; it runs online "
            "with `vast.streaming.StreamingClassifier` (`docs/streaming.md`)."
        )
    else:
        lines.append(
            "- Not causal: an output depends on every frame of the clip, later ones too; it cannot "
            "run online, frame by frame."
        )
    lines.append("- No licence is stated for these weights: they carry the terms of the data they were trained on.")
    return "## Limitations\n\n" + "\n".join(lines)


def _usage(hub: Mapping[str, Any]) -> str:
    example = "image.jpg" if _is_image(hub) else "video.mp4"
    text = (
        '## Use\n\n```python\nimport vast\n\nmodel = vast.create_model("path/to/this/folder").eval()\n```\n\n'
        f"```bash\nvast predict path/to/this/folder {example}\n"
        "vast eval path/to/this/folder --data val.csv --views 4x3\n```"
    )
    if hub["architecture"].startswith("ast_"):
        text += (
            "\n\nWith timm (`import vast` first: it registers the architecture):\n\n"
            "```python\nimport timm\nimport vast\n\n"
            'model = timm.create_model("local-dir:path/to/this/folder", pretrained=True).eval()\n```'
        )
    return text
