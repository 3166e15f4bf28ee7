"""Rows of a benchmark: names, options, labels, the peers' inputs, a row's input."""

import pytest
import torch

from vast import bench
from vast.errors import ConfigError, UnknownModelError


def test_model_arguments_parse_into_names_and_literal_options():
    assert bench.parse_model_arg("vast_tiny:t_patch=2,norm=layernorm,fused=True") == (
        "vast_tiny", (("t_patch", 2), ("norm", "layernorm"), ("fused", True))
    )  # fmt: skip
    assert bench.parse_model_arg("swin3d_t") == ("swin3d_t", ())
    assert bench.parse_model_arg("vast_tiny:temporal_offsets=[1,2],temporal_context=True,fused=True") == (
        "vast_tiny", (("temporal_offsets", (1, 2)), ("temporal_context", True), ("fused", True))
    )  # fmt: skip


def test_bad_names_and_options_raise_clear_errors():
    with pytest.raises(UnknownModelError, match="did you mean vast_nano"):
        bench.parse_model_arg("vast_nan")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        bench.parse_model_arg("vast_nano:t_patch")
    with pytest.raises(ConfigError, match="VAST models only"):
        bench.parse_model_arg("swin3d_t:t_patch=2")


def test_labels_of_a_row():
    spec = bench.ModelSpec("vast_tiny", (1, 3, 8, 224, 224), (("t_patch", 2), ("fused", True)))
    assert spec.key == "vast_tiny:t_patch=2,fused=True @ 8x224x224"
    assert spec.fused and spec.is_vast and spec.unfused.model_label == "vast_tiny:t_patch=2"
    assert not bench.ModelSpec("swin3d_t", (1, 3, 8, 224, 224)).is_vast


def test_peer_inputs_come_from_the_weights_and_the_common_clip():
    assert bench.weights_input("mvit_v2_s") == (1, 3, 16, 224, 224)
    assert bench.weights_input("r2plus1d_18") == (1, 3, 16, 112, 112)
    assert bench.common_input("mvit_v2_s") == (1, 3, 16, 224, 224)  # mvit needs 16 frames
    assert bench.common_input("swin3d_t") == (1, 3, 8, 224, 224)
    specs = bench.default_specs(["vast_nano"], peers=True, quick=True)
    assert [s.name for s in specs] == ["vast_nano", "swin3d_t", "mvit_v2_s", "r2plus1d_18", "s3d"]
    assert [s.note for s in specs] == ["common", "common", "nearest accepted", "common", "nearest accepted"]


def test_default_rows_are_vast_tiny_as_trained_and_as_deployed():
    assert [s.model_label for s in bench.default_specs()] == [
        "vast_tiny", "vast_tiny:fused=True", "vast_tiny:t_patch=2,fused=True"
    ]  # fmt: skip


def test_inputs_are_seeded_and_shaped_as_asked():
    spec = bench.ModelSpec("vast_nano", (1, 3, 4, 8, 8))
    x = bench.make_input(spec, torch.device("cpu"), batch=2)
    assert x.shape == (2, 3, 4, 8, 8) and torch.equal(x, bench.make_input(spec, torch.device("cpu"), batch=2))
    y = bench.make_input(spec, torch.device("cpu"), torch.bfloat16, channels_last=True)
    assert y.dtype == torch.bfloat16 and y.is_contiguous(memory_format=torch.channels_last_3d)


def test_only_affine_shift_models_are_vast_rows():
    """The study's peers live in vast's registry (built by name) but are not VAST: no token shifts to time."""
    rows = {name: bench.ModelSpec(name, (1, 3, 8, 32, 32)) for name in ("vast_nano", "video_swin", "tsm", "swin3d_t")}
    assert [name for name, row in rows.items() if row.is_vast] == ["vast_nano"]
    assert [name for name, row in rows.items() if row.in_registry] == ["vast_nano", "video_swin", "tsm"]
