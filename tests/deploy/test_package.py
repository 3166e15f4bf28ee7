"""Model folders (`vast export CHECKPOINT --format dir OUT`): what the folder holds, read back with json,
safetensors and yaml; the model `vast.create_model`, `load_run`, `vast predict` / `vast eval` and
`timm.create_model("local-dir:...")` rebuild from it, against the checkpoint's model rebuilt by hand."""

import contextlib
import io
import json
import re
import shutil

import pytest
import timm
import torch
import yaml
from safetensors.torch import load_file

import vast
from vast.cli.main import main
from vast.data.annotations import Annotations, VideoRecord
from vast.engine.checkpoint import atomic_save
from vast.engine.config import load_config
from vast.engine.data import build_eval_dataset
from vast.engine.evaluate import load_run
from vast.errors import CheckpointError, UnknownModelError

EVAL_KEYS = ("num_frames", "sampler", "stride", "short_side", "crop_size", "mean", "std")


def quietly(argv):
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        code = main([str(a) for a in argv])
    return code, printed.getvalue()


@pytest.fixture(scope="module")
def vast_run(tiny_overrides, tmp_path_factory):
    """A vast_nano run of 2 steps on the tiny demo set, trained and evaluated from the command line."""
    out = tmp_path_factory.mktemp("run")
    argv = ["train", "demo", "--quiet", "--output", out]
    for item in [*tiny_overrides, "train.epochs=1", "train.max_steps=2", "data.sampler=dense", "data.stride=2"]:
        argv += ["--set", item]
    assert quietly(argv)[0] == 0
    assert quietly(["eval", out / "last.pt", "--workers", "0"])[0] == 0
    return out


@pytest.fixture(scope="module")
def packaged(vast_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("packaged") / "vast_nano_digits"
    code, printed = quietly(["export", vast_run / "last.pt", "--format", "dir", out])
    assert code == 0 and "max abs diff 0.00e+00, ok" in printed, printed
    return out


def checkpoint_model(path):
    """The checkpoint's model rebuilt by hand (plain weights, eval mode) and the checkpoint."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    model_config = state["config"]["model"]
    model = vast.create_model(model_config["name"], num_classes=state["num_classes"], **model_config["options"])
    model.load_state_dict(state["model"])
    return model.eval(), state


def test_the_folder_holds_timms_hub_form_and_the_weights(vast_run, packaged):
    _, state = checkpoint_model(vast_run / "last.pt")
    assert sorted(p.name for p in packaged.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((packaged / "config.json").read_text())
    assert config["architecture"] == "vast_nano" and config["num_classes"] == state["num_classes"] == 8
    assert config["label_names"] == state["class_names"]
    assert config["model_args"] == state["config"]["model"]["options"]
    assert config["num_features"] == 256 and config["global_pool"] == "avg"
    cfg, data = config["pretrained_cfg"], state["config"]["data"]
    assert cfg["input_size"] == [3, 4, 32, 32] and cfg["num_frames"] == 4
    assert (cfg["frame_sampler"], cfg["frame_stride"], cfg["short_side"]) == ("dense", 2, 32)
    assert (cfg["crop_pct"], cfg["crop_mode"], cfg["interpolation"]) == (1.0, "center", "bilinear")
    assert cfg["mean"] == list(data["mean"]) and cfg["std"] == list(data["std"])
    assert "license" not in cfg and "url" not in cfg
    weights = load_file(str(packaged / "model.safetensors"))
    assert weights.keys() == state["model"].keys()
    for key, value in state["model"].items():
        assert torch.equal(weights[key], value), key


def test_create_model_of_the_folder_gives_the_checkpoints_outputs(vast_run, packaged):
    reference, _ = checkpoint_model(vast_run / "last.pt")
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        for name in (packaged, str(packaged), f"local-dir:{packaged}"):
            model = vast.create_model(name).eval()
            assert torch.equal(model(x), expected), name
    assert model.pretrained_cfg["num_frames"] == 4 and model.pretrained_cfg["source"] == "local-dir"


def test_another_class_count_keeps_the_body_and_starts_a_fresh_classifier(packaged):
    weights = load_file(str(packaged / "model.safetensors"))
    model = vast.create_model(packaged, num_classes=5, drop_path_rate=0.1)
    assert model.head.weight.shape == (5, 256) and model.num_classes == 5
    assert torch.equal(model.stem.proj.weight, weights["stem.proj.weight"])
    assert "label_names" not in model.pretrained_cfg  # the folder's names are of its own 8 classes


def test_load_run_rebuilds_the_runs_evaluation_transform(vast_run, packaged, tiny_demo):
    run, loaded = load_run(vast_run / "last.pt"), load_run(packaged)
    assert loaded.class_names == run.class_names and loaded.weights == "packaged"
    assert loaded.config.model.name == "vast_nano" and loaded.config.model.options == run.config.model.options
    for key in EVAL_KEYS:
        assert getattr(loaded.config.data, key) == getattr(run.config.data, key), key
    # The same clips, to the bit, from the two configurations: 2 clips x 3 crops of one video.
    video = tiny_demo.root / "val" / "00003.mp4"
    annotations = Annotations([VideoRecord(video, 0)], run.class_names)
    ours, theirs = (build_eval_dataset(r.config.data, annotations, clips=2, crops=3)[0][0] for r in (loaded, run))
    assert ours.shape == (6, 3, 4, 32, 32) and torch.equal(ours, theirs)


def test_vast_predict_and_eval_take_the_folder(vast_run, packaged, tiny_demo, tmp_path):
    video = tiny_demo.root / "val" / "00000.mp4"
    runs = [quietly(["predict", path, video, "--json", "--top-k", "3"]) for path in (vast_run / "last.pt", packaged)]
    assert runs[0][0] == runs[1][0] == 0
    assert json.loads(runs[1][1]) == json.loads(runs[0][1])
    assert quietly(["eval", packaged, "--data", tiny_demo.val, "--workers", "0", "--out", tmp_path])[0] == 0
    ours = json.loads((tmp_path / "eval_1x1.json").read_text())
    theirs = json.loads((vast_run / "eval_1x1.json").read_text())
    assert ours["confusion"] == theirs["confusion"] and ours["top1"] == theirs["top1"]
    assert ours["weights"] == "packaged" and theirs["weights"] == "model"


def test_the_card_states_params_gmacs_the_runs_evaluation_and_its_recipe(vast_run, packaged):
    reference, state = checkpoint_model(vast_run / "last.pt")
    card = (packaged / "README.md").read_text()
    params = sum(p.numel() for p in reference.parameters())
    gmacs, _ = vast.count_flops(reference, (1, 3, 4, 32, 32))
    assert f"| params | {params / 1e6:.2f} M ({params:,}) |" in card
    assert f"| GMACs | {gmacs:.3f} per view of 1x3x4x32x32 " in card
    report = json.loads((vast_run / "eval_1x1.json").read_text())
    row = f"| 1x1 | {report['top1']:.2f} | {report['top5']:.2f} | 8 (0) | these | {report['data']} | `eval_1x1.json` |"
    assert row in card
    assert report["protocol"] in card and "Not causal" in card and "not evaluated" not in card.lower()
    recipe = re.search(r"```yaml\n(.*?)```", card, re.S).group(1)
    assert yaml.safe_load(recipe) == json.loads(json.dumps(state["config"]))


@pytest.fixture(scope="module")
def ast_checkpoint(tmp_path_factory, randomize):
    """A train-free AST checkpoint: ast_nano with random affines and BatchNorm statistics, saved with
    the entries of a training checkpoint (3 classes, images at 32 px), and EMA weights of other values."""
    config = load_config(None, ["model.name=ast_nano", "data.num_frames=1", "data.crop_size=32", "data.short_side=0"])
    model = randomize(vast.create_model("ast_nano", num_classes=3)).eval()
    ema = randomize(vast.create_model("ast_nano", num_classes=3), seed=1).state_dict()
    path = tmp_path_factory.mktemp("ast") / "best.pt"
    classes = ["checks", "hstripes", "vstripes"]
    entries = {"model": model.state_dict(), "ema": ema, "config": config.to_dict(), "class_names": classes}
    atomic_save({**entries, "num_classes": 3}, path)
    return path, model


def test_timm_loads_an_exported_ast_model_from_a_local_dir(ast_checkpoint, tmp_path):
    path, model = ast_checkpoint
    out = tmp_path / "ast_nano_patterns"
    code, printed = quietly(["export", path, "--format", "dir", "--out", out])
    assert code == 0 and "(dir, input 1x3x32x32)" in printed, printed
    loaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(vast.create_model(out).eval()(x), model(x))
    data = timm.data.resolve_data_config({}, model=loaded)
    # short_side 0: the evaluation transform resizes to round(32 / 0.875) = 37, so crop_pct is 32 / 37
    assert tuple(data["input_size"]) == (3, 32, 32) and data["crop_pct"] == pytest.approx(32 / 37)
    assert data["interpolation"] == "bilinear" and tuple(data["mean"]) == (0.485, 0.456, 0.406)
    assert loaded.pretrained_cfg["label_names"] == ["checks", "hstripes", "vstripes"]
    assert load_run(out).config.data.short_side == 0  # 0 is kept: 3 crops resize to the crop, not to 37
    card = (out / "README.md").read_text()
    assert "Not evaluated" in card and 'timm.create_model("local-dir:' in card and "library_name: timm" in card


def test_ema_weights_are_packaged_and_named_so(ast_checkpoint, tmp_path):
    path, _ = ast_checkpoint
    assert quietly(["export", path, "--format", "dir", tmp_path / "ema", "--ema"])[0] == 0
    ema = torch.load(path, map_location="cpu", weights_only=True)["ema"]
    weights = load_file(str(tmp_path / "ema" / "model.safetensors"))
    assert weights.keys() == ema.keys() and all(torch.equal(weights[k], v) for k, v in ema.items())
    assert "| weights | the EMA weights of `best.pt` |" in (tmp_path / "ema" / "README.md").read_text()


def test_a_vast_entry_point_takes_a_packaged_pretrained_cfg(packaged):
    cfg = json.loads((packaged / "config.json").read_text())["pretrained_cfg"]
    model = vast.create_model("vast_nano", num_classes=10, pretrained_cfg=cfg)
    assert model.pretrained_cfg["input_size"] == (3, 4, 32, 32) and model.pretrained_cfg["frame_sampler"] == "dense"
    default = vast.create_model("vast_nano")
    assert default.pretrained_cfg["input_size"] == (3, 8, 224, 224) and default.pretrained_cfg["num_frames"] == 8


def _without(packaged, tmp_path, *names):
    folder = tmp_path / "broken"
    shutil.copytree(packaged, folder)
    for name in names:
        (folder / name).unlink()
    return folder


def test_broken_folders_give_one_line_errors_that_name_the_file(packaged, tmp_path):
    with pytest.raises(CheckpointError, match=r"no/such/folder; write one with `vast export"):
        vast.create_model("no/such/folder")
    with pytest.raises(CheckpointError, match=r"config.json not found: .* is not a model folder") as info:
        vast.create_model(_without(packaged, tmp_path, "config.json"))
    assert "\n" not in str(info.value)
    shutil.rmtree(tmp_path / "broken")
    with pytest.raises(CheckpointError, match=r"model.safetensors not found: the model folder has no weights"):
        vast.create_model(_without(packaged, tmp_path, "model.safetensors"))
    config = json.loads((packaged / "config.json").read_text())
    (tmp_path / "broken" / "config.json").write_text(json.dumps({**config, "architecture": "vast_huge"}))
    with pytest.raises(UnknownModelError, match=r"config.json: unknown model 'vast_huge'; did you mean"):
        vast.create_model(tmp_path / "broken")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["predict", "EMPTY", "VIDEO"], "holds neither last.pt (a run folder) nor config.json (a model folder)"),
        (["eval", "PACKAGED", "--ema"], "is a model folder with one set of weights; drop --ema"),
        (["export", "RUN/last.pt", "--format", "dir", "RUN"], "is a run folder (it holds last.pt)"),
        (["export", "RUN/last.pt", "--format", "dir", "A", "--out", "B"], "two outputs"),
    ],
)
def test_the_command_line_refuses_with_one_line(argv, message, vast_run, packaged, tiny_demo, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    names = {"EMPTY": tmp_path / "empty", "PACKAGED": packaged, "VIDEO": tiny_demo.root / "val" / "00000.mp4"}
    argv = [str(names.get(a, a)).replace("RUN", str(vast_run)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
