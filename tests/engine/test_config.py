"""Recipes, --set overrides and their type checks."""

import pytest

from vast.engine.config import RunConfig, config_from_dict, load_config, recipe_names
from vast.errors import ConfigError


def test_every_shipped_recipe_loads():
    names = recipe_names()
    assert {"demo", "k400_vast_tiny", "ssv2_vast_tiny", "imagenet_ast_tiny"} <= set(names)
    for name in names:
        assert isinstance(load_config(name), RunConfig)


def test_recipe_values_and_choices():
    ssv2 = load_config("ssv2_vast_tiny")
    assert ssv2.data.flip is False and ssv2.data.sampler == "tsn"
    demo = load_config("demo")
    assert demo.model.name == "vast_nano" and demo.data.flip is False
    assert demo.model.options["norm"] == "batchnorm"


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
