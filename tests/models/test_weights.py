"""Loading weights: safetensors and torch files, AST -> VAST inflation, classifier replacement."""

import logging

import pytest
import torch
from safetensors.torch import save_file

import vast
from vast.errors import CheckpointError, ConfigError, UnknownModelError
from vast.models import load_weights


def _static_clip(frame: torch.Tensor, frames: int) -> torch.Tensor:
    return frame.unsqueeze(2).repeat(1, 1, frames, 1, 1)


@pytest.mark.parametrize("t_patch", [1, 2])
def test_ast_weights_load_into_vast_and_a_static_clip_gives_the_image_features(tmp_path, t_patch, randomize):
    image_model = randomize(vast.create_model("ast_nano", num_classes=10)).eval()
    path = tmp_path / "ast_nano.safetensors"
    save_file(image_model.state_dict(), str(path))
    # Without the temporal shift, every frame of a static clip must see exactly the image model.
    video_model = vast.create_model(
        "vast_nano", num_classes=10, t_patch=t_patch, temporal_shift=False, checkpoint_path=path
    ).eval()
    frame = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        image_features = image_model.forward_features(frame)  # (B, H, W, C)
        video_features = video_model.forward_features(_static_clip(frame, 4))  # (B, T, H, W, C)
        for t in range(video_features.shape[1]):
            torch.testing.assert_close(video_features[:, t], image_features, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(
            video_model(_static_clip(frame, 4)), image_model(frame), atol=1e-5, rtol=1e-4
        )
    kernel = video_model.stem.proj.weight
    assert kernel.shape[2] == t_patch
    torch.testing.assert_close(kernel.sum(2), image_model.stem.proj.weight)


def test_classifier_with_other_class_count_is_dropped_and_reported(tmp_path, caplog):
    source = vast.create_model("ast_nano", num_classes=1000)
    path = tmp_path / "weights.pt"
    torch.save({"model": source.state_dict(), "epoch": 3}, path)
    with caplog.at_level(logging.WARNING):
        model = vast.create_model("vast_nano", num_classes=8)
        report = load_weights(model, path)
    # the head, and the temporal context terms an image model has not (zero-initialised: left so)
    assert sorted(k for k in report.missing if ".context." not in k) == ["head.bias", "head.weight"]
    assert all(torch.count_nonzero(p) == 0 for n, p in model.named_parameters() if ".context." in n)
    assert report.unexpected == []
    assert "head.weight" in caplog.text
    torch.testing.assert_close(
        model.stages[2].blocks[0].mixer.value.weight, source.stages[2].blocks[0].mixer.value.weight
    )


def test_ddp_and_compile_prefixes_are_stripped(tmp_path):
    source = vast.create_model("vast_nano")
    state = {f"module._orig_mod.{k}": v for k, v in source.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save(state, path)
    model = vast.create_model("vast_nano", checkpoint_path=path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_vast_weights_load_back_into_ast(tmp_path):
    source = vast.create_model("vast_nano", t_patch=2, num_classes=5)
    path = tmp_path / "v.safetensors"
    save_file(source.state_dict(), str(path))
    image_model = vast.create_model("ast_nano", num_classes=5, checkpoint_path=path)
    torch.testing.assert_close(image_model.stem.proj.weight, source.stem.proj.weight.sum(2))


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        vast.create_model("vast_nano", checkpoint_path=tmp_path / "missing.safetensors")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read"):
        vast.create_model("vast_nano", checkpoint_path=garbage)
    other = tmp_path / "tiny.safetensors"
    save_file(vast.create_model("ast_tiny").state_dict(), str(other))
    with pytest.raises(CheckpointError, match="does not fit"):
        vast.create_model("vast_nano", checkpoint_path=other)
    not_weights = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_weights)
    with pytest.raises(CheckpointError, match="no model state dict"):
        vast.create_model("vast_nano", checkpoint_path=not_weights)


def test_pickled_objects_are_refused(tmp_path):
    import argparse

    path = tmp_path / "pickle.pt"
    torch.save({"model": argparse.Namespace(code="not allowed by weights_only")}, path)
    with pytest.raises(CheckpointError, match="cannot read"):
        vast.create_model("vast_nano", checkpoint_path=path)


def test_registry_errors():
    with pytest.raises(UnknownModelError, match="did you mean vast_tiny"):
        vast.create_model("vast_tiyn")
    with pytest.raises(CheckpointError, match="no pretrained weights"):
        vast.create_model("vast_tiny", pretrained=True)
    with pytest.raises(ConfigError, match="did you mean temporal_shift"):
        vast.create_model("vast_nano", temporal_shfit=False)
    assert vast.list_models("vast_*") == ["vast_base", "vast_nano", "vast_small", "vast_tiny"]
    assert vast.list_models("nothing*") == []
