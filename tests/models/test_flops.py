"""MAC counts against hand-computed values."""

import torch

import vast


def _hand_count_macs(
    dim: int, depths, tokens_per_frame: int, frames: int, num_classes: int, t_patch: int = 1, context: bool = True
):
    """Multiply-adds of one forward pass, written out layer by layer (``context``: a temporal context term,
    C^2 per position, in every block of a video model)."""
    t = frames // t_patch
    n = t * tokens_per_frame  # stage-1 tokens
    macs = n * 3 * 16 * t_patch * dim  # patch embedding: 3 * 4 * 4 * t_patch inputs per output
    width = dim
    for i, depth in enumerate(depths):
        if i > 0:
            n //= 4
            macs += n * 4 * width * 2 * width  # patch merging: Linear 4C -> 2C
            width *= 2
        per_token = 4 * width * width + 2 * 4 * width * width  # mixer (V, O, affine 2C) + MLP (ratio 4)
        macs += depth * n * per_token
        if context and frames > 1:
            macs += depth * (n // t) * width * width  # W_c on each position's mean over the t frames
    return macs + width * num_classes


def test_count_flops_matches_hand_count():
    model = vast.create_model("vast_nano", num_classes=400)
    gmacs, params = vast.count_flops(model, (1, 3, 8, 64, 64))
    expected = _hand_count_macs(32, (1, 1, 3, 1), 16 * 16, 8, 400)
    assert round(gmacs * 1e9) == expected
    assert params == sum(p.numel() for p in model.parameters())


def test_count_flops_t_patch_and_image_model():
    model = vast.create_model("vast_nano", num_classes=10, t_patch=2)
    gmacs, _ = vast.count_flops(model, (1, 3, 8, 64, 64))
    assert round(gmacs * 1e9) == _hand_count_macs(32, (1, 1, 3, 1), 16 * 16, 8, 10, t_patch=2)
    old = vast.create_model("vast_nano", num_classes=10, temporal_context=False)  # the default before
    gmacs, _ = vast.count_flops(old, (1, 3, 8, 64, 64))
    assert round(gmacs * 1e9) == _hand_count_macs(32, (1, 1, 3, 1), 16 * 16, 8, 10, context=False)
    image = vast.create_model("ast_nano", num_classes=10)
    gmacs, _ = vast.count_flops(image, (1, 3, 64, 64))
    assert round(gmacs * 1e9) == _hand_count_macs(32, (1, 1, 3, 1), 16 * 16, 1, 10)


def test_tiny_is_swin_t_class_and_video_is_linear_in_frames():
    with torch.device("meta"):
        ast_tiny, vast_tiny = vast.create_model("ast_tiny"), vast.create_model("vast_tiny")
    image_gmacs, image_params = vast.count_flops(ast_tiny, (1, 3, 224, 224))
    assert 4.0 < image_gmacs < 5.0 and 25e6 < image_params < 30e6
    video_gmacs, _ = vast.count_flops(vast_tiny, (1, 3, 8, 224, 224))
    assert 7.8 * image_gmacs < video_gmacs < 8.1 * image_gmacs


def test_count_flops_restores_training_mode():
    model = vast.create_model("vast_nano").train()
    vast.count_flops(model, (1, 3, 4, 64, 64))
    assert model.training
