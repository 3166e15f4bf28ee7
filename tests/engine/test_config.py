"""Recipes, --set overrides and their type checks."""

from importlib import resources

import pytest
import yaml

from vast.data.sampling import SAMPLERS
from vast.engine.config import CHOICES, config_from_dict, load_config, recipe_names
from vast.errors import ConfigError

RECIPE = """\
model:
  name: vast_tiny
  num_classes: 174
  options:
    norm: layernorm
    t_patch: 2
data:
  train: lists/train.txt
  num_frames: 16
  sampler: dense
  stride: 2
  crop_size: 160
  train_short_side: [160, 200]
  flip: true
  flip_pairs: [[0, 1], [4, 5]]
  mean: [0.5, 0.25, 0.125]
optim:
  name: sgd
  lr: 0.1
  clip_grad: 5
train:
  epochs: 12
  amp: bf16
  output_dir: runs/hand
"""


def test_a_recipe_file_gives_its_values_and_set_overrides_them(tmp_path):
    path = tmp_path / "hand.yaml"
    path.write_text(RECIPE)
    config = load_config(path)
    assert config.model.name == "vast_tiny" and config.model.num_classes == 174
    assert config.model.options == {"norm": "layernorm", "t_patch": 2}
    assert config.data.train == "lists/train.txt" and config.data.num_frames == 16
    assert config.data.sampler == "dense" and config.data.stride == 2 and config.data.crop_size == 160
    assert config.data.train_short_side == (160, 200) and config.data.flip is True
    assert config.data.flip_pairs == [[0, 1], [4, 5]] and config.data.mean == (0.5, 0.25, 0.125)
    assert config.optim.name == "sgd" and config.optim.lr == 0.1
    assert config.optim.clip_grad == 5.0 and type(config.optim.clip_grad) is float  # an int in the file
    assert config.train.epochs == 12 and config.train.amp == "bf16" and config.train.output_dir == "runs/hand"

    overridden = load_config(
        path,
        [
            "optim.lr=0.02",  # set in the file: the override wins
            "train.batch_size=6",  # not in the file
            "model.options.drop_path_rate=0.1",  # joins the file's options
            "model.options.t_patch=1",
            "data.flip=false",
            "model.num_classes=null",
        ],
    )
    assert overridden.optim.lr == 0.02 and overridden.train.batch_size == 6
    assert overridden.model.options == {"norm": "layernorm", "t_patch": 1, "drop_path_rate": 0.1}
    assert overridden.data.flip is False and overridden.model.num_classes is None
    assert overridden.optim.name == "sgd" and overridden.data.crop_size == 160  # the rest as in the file

    with pytest.raises(ConfigError, match=r"unknown config key 'data.cropsize' in --set; did you mean data.crop_size"):
        load_config(path, ["data.cropsize=128"])
    path.write_text(RECIPE.replace("  stride: 2", "  strides: 2"))
    message = r"unknown config key 'data.strides' in .*hand.yaml; did you mean data.stride"
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_every_shipped_recipe_loads_the_values_it_states():
    names = recipe_names()
    assert {"demo", "k400_vast_tiny", "ssv2_vast_tiny", "imagenet_ast_tiny"} <= set(names)
    for name in names:
        written = yaml.safe_load((resources.files("vast.recipes") / f"{name}.yaml").read_text())
        config = load_config(name)
        for section, values in written.items():
            for key, value in values.items():
                loaded = getattr(getattr(config, section), key)
                if isinstance(loaded, tuple):
                    loaded = list(loaded)
                assert loaded == value, f"{name}: {section}.{key}"


def test_recipe_values_and_choices():
    ssv2 = load_config("ssv2_vast_tiny")
    assert ssv2.data.flip is False and ssv2.data.sampler == "tsn"
    demo = load_config("demo")
    assert demo.model.name == "vast_nano" and demo.data.flip is False
    assert demo.model.options["norm"] == "batchnorm"


def test_samplers_by_time_and_by_index():
    assert CHOICES["data.sampler"] == SAMPLERS
    assert load_config("demo").data.fps == 0.0
    for name in SAMPLERS:
        assert load_config("demo", [f"data.sampler={name}"]).data.sampler == name
    dense = load_config("demo", ["data.sampler=dense", "data.fps=15"])
    assert dense.data.fps == 15.0
    with pytest.raises(ConfigError, match=r"data\.fps sets the frame rate of data\.sampler=dense; tsn_frames has none"):
        load_config("demo", ["data.sampler=tsn_frames", "data.fps=15"])
    # A run saved before data.fps existed loads with each video's own rate.
    saved = load_config("demo").to_dict()
    del saved["data"]["fps"]
    assert config_from_dict(saved).data.fps == 0.0


def test_overrides_are_typed():
    config = load_config(
        "demo",
        [
            "optim.lr=0.01",
            "train.epochs=3",
            "optim.clip_grad=1",
            "data.mean=[0.5, 0.5, 0.5]",
            "model.options.temporal_shift=false",
            "train.amp=bf16",
            "model.init_checkpoint=null",
        ],
    )
    assert config.optim.lr == 0.01 and config.train.epochs == 3
    assert config.optim.clip_grad == 1.0 and isinstance(config.optim.clip_grad, float)
    assert config.data.mean == (0.5, 0.5, 0.5)
    assert config.model.options["temporal_shift"] is False
    assert config.model.init_checkpoint is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=0.1", "did you mean optim.lr"),
        ("train.epoch=3", "did you mean train.epochs"),
        ("train.epochs=three", "train.epochs expects int"),
        ("train.epochs=2.5", "train.epochs expects int"),
        ("data.flip=maybe", "data.flip expects bool"),
        ("train.amp=fp8", "train.amp must be one of none, bf16, fp16"),
        ("train.amp=off", "YAML's reading of off/on/yes/no: quote it"),
        ("data.mean=[1, 2]", "data.mean expects 3 numbers"),
        ("data.sampler=uniform", "^data.sampler must be one of tsn, dense, tsn_frames, dense_frames; got 'uniform'$"),
        ("data.fps=-1", "data.fps must be 0"),
        ("optim.lr", "--set expects KEY=VALUE"),
        ("train.batch_size=0", "train.batch_size must be positive"),
        ("nonsense=1", "unknown config key 'nonsense'"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("demo", [override])


def test_unknown_recipe_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="did you mean demo"):
        load_config("dmeo")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("train:\n  epocs: 3\n")
    with pytest.raises(
        ConfigError, match=r"unknown config key 'train.epocs' in .*unknown.yaml; did you mean train.epochs"
    ):
        load_config(unknown)


def test_saved_config_round_trips(tmp_path):
    config = load_config("k400_vast_tiny", ["optim.lr=0.0005", "model.options.t_patch=2"])
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config
    assert config_from_dict(config.to_dict()) == config


def test_another_model_on_the_command_line_leaves_out_the_recipes_options_it_does_not_take(caplog):
    """`vast train demo --set model.name=tsm`: demo's `norm` is a VAST option; TSM's drop_path_rate stays."""
    with caplog.at_level("INFO", logger="vast.engine.config"):
        config = load_config("demo", ["model.name=tsm", "model.options.width=16"])
    assert config.model.options == {"drop_path_rate": 0.0, "width": 16}
    assert [r.getMessage() for r in caplog.records] == [
        "model.options norm of the recipe's vast_nano do not apply to tsm: left out"
    ]
    assert load_config("demo", ["model.name=vast_tiny"]).model.options["norm"] == "batchnorm"  # VAST takes it
    # An option given again with --set is the user's: it stays, and the model names it if it is wrong.
    assert load_config("demo", ["model.name=tsm", "model.options.norm=batchnorm"]).model.options["norm"] == "batchnorm"
