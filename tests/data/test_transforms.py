"""Clip transforms against plain-tensor references: crops, normalisation, flips, per-clip randomness."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from vast.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LabelAwareHorizontalFlip,
    NormalizeVideo,
    ThreeCrop,
    build_eval_transform,
    build_train_transform,
    to_video,
)


def random_frames(t=4, h=48, w=64, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def ramp_frames(t=2, h=64, w=96) -> np.ndarray:
    """Red = 2 x column, green = 2 x row, blue = 7. Halving the size with an antialiased (symmetric,
    normalised) filter keeps a linear ramp linear: pixel j of the half-size frame is centred on
    input column 2j + 0.5, so its red is 2 (2j + 0.5) = 4j + 1 exactly (green 4i + 1), with no rounding."""
    rows, cols = np.mgrid[:h, :w]
    frame = np.stack([2 * cols, 2 * rows, np.full_like(cols, 7)], axis=-1).astype(np.uint8)
    return np.repeat(frame[None], t, axis=0)


def imagenet_normalised(red, green, blue) -> torch.Tensor:
    """(3, ...) float32 from uint8-scale channel values, with ImageNet's statistics written out."""
    values = [torch.as_tensor(c, dtype=torch.float64) / 255 for c in (red, green, blue)]
    means, stds = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return torch.stack([(v - m) / s for v, m, s in zip(values, means, stds)]).float()


def normalise_reference(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (C, T, H, W), written out plainly."""
    x = torch.from_numpy(frames).double() / 255
    x = (x - torch.tensor(IMAGENET_MEAN, dtype=torch.float64)) / torch.tensor(
        IMAGENET_STD, dtype=torch.float64
    )
    return x.permute(3, 0, 1, 2).float()


def test_to_video_is_a_channels_first_view():
    frames = random_frames()
    video = to_video(frames)
    assert isinstance(video, tv_tensors.Video) and video.shape == (4, 3, 48, 64)
    assert torch.equal(video[2, 1], torch.from_numpy(frames[2, :, :, 1]))
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        to_video(frames[0])


def test_eval_transform_centre_crop_and_normalise():
    frames = random_frames(h=64, w=80)
    # short_side = crop size: no resize, so the result is an exact centre crop, normalised.
    clip, label = build_eval_transform(48, short_side=64)(to_video(frames), 5)
    assert label == 5 and clip.dtype == torch.float32 and clip.shape == (3, 4, 48, 48)
    reference = normalise_reference(frames[:, 8:56, 16:64])
    torch.testing.assert_close(clip, reference, atol=1e-5, rtol=1e-5)


def test_eval_transform_resizes_the_short_side_by_default():
    # crop 28: the short side goes to round(28 / 0.875) = 32, so 64 x 96 halves to 32 x 48 and the
    # centre 28 x 28 starts at row (32 - 28) / 2 = 2 and column (48 - 28) / 2 = 10.
    clip, label = build_eval_transform(28)(to_video(ramp_frames(t=2, h=64, w=96)), 3)
    assert label == 3 and clip.shape == (3, 2, 28, 28)
    i = torch.arange(28, dtype=torch.float64)
    red = (4 * (i + 10) + 1).expand(28, 28)  # 4 j + 41 along a row
    green = (4 * (i + 2) + 1)[:, None].expand(28, 28)  # 4 i + 9 down a column
    expected = imagenet_normalised(red, green, torch.full((28, 28), 7.0))
    for t in range(2):
        torch.testing.assert_close(clip[:, t], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(48, 80), (80, 48)])
def test_three_crop_along_the_long_side(height, width):
    frames = random_frames(h=height, w=width)
    views, _ = build_eval_transform(48, num_crops=3)(to_video(frames), 1)
    assert views.shape == (3, 3, 4, 48, 48)
    if width > height:  # left, centre, right
        crops = [frames[:, :, 0:48], frames[:, :, 16:64], frames[:, :, 32:80]]
    else:  # top, centre, bottom
        crops = [frames[:, 0:48], frames[:, 16:64], frames[:, 32:80]]
    for view, crop in zip(views, crops):
        torch.testing.assert_close(view, normalise_reference(crop), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least that size"):
        ThreeCrop(64)(to_video(frames))


def test_normalise_is_exact_and_needs_uint8():
    frames = random_frames()
    out = NormalizeVideo()(to_video(frames))
    torch.testing.assert_close(out.permute(1, 0, 2, 3), normalise_reference(frames), atol=1e-5, rtol=1e-5)
    # The default statistics, worked out by hand: black, white and grey 51 (= 0.2) per channel.
    levels = np.array([0, 255, 51], dtype=np.uint8)
    pixels = np.broadcast_to(levels[None, None, :, None], (1, 1, 3, 3)).copy()
    by_hand = [
        [-0.485 / 0.229, 0.515 / 0.229, -0.285 / 0.229],  # red: (x - 0.485) / 0.229
        [-0.456 / 0.224, 0.544 / 0.224, -0.256 / 0.224],  # green
        [-0.406 / 0.225, 0.594 / 0.225, -0.206 / 0.225],  # blue
    ]
    assert by_hand[0][0] == pytest.approx(-2.1179039) and by_hand[2][1] == pytest.approx(2.64)
    out = NormalizeVideo()(to_video(pixels))[0, :, 0]  # (3 channels, 3 levels)
    torch.testing.assert_close(out, torch.tensor(by_hand), atol=1e-6, rtol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        NormalizeVideo()(tv_tensors.Video(torch.zeros(2, 3, 4, 4)))


def test_label_aware_flip_mirrors_frames_and_swaps_paired_labels():
    frames = random_frames()
    flip = LabelAwareHorizontalFlip([(0, 1), (4, 5)], p=1.0)
    video, label = flip(to_video(frames), 0)
    assert label == 1
    assert torch.equal(video, to_video(np.ascontiguousarray(frames[:, :, ::-1])))
    assert flip(to_video(frames), 5)[1] == 4
    assert flip(to_video(frames), 2)[1] == 2  # not in a pair: a flip keeps it
    keep = LabelAwareHorizontalFlip([(0, 1)], p=0.0)
    video, label = keep(to_video(frames), 0)
    assert label == 0 and torch.equal(video, to_video(frames))
    with pytest.raises(ValueError, match="more than one flip pair"):
        LabelAwareHorizontalFlip([(0, 1), (1, 2)])


def test_train_transform_flips_labels_only_when_asked():
    frames = random_frames(h=64, w=64)
    torch.manual_seed(0)
    no_flip = build_train_transform(64, scale=(1, 1), ratio=(1, 1))  # the default: no flip at all
    for _ in range(20):
        clip, label = no_flip(to_video(frames), 0)
        assert label == 0  # direction-sensitive data keeps its frames and labels as they are
        torch.testing.assert_close(clip, normalise_reference(frames), atol=1e-5, rtol=1e-5)
    aware = build_train_transform(64, scale=(1, 1), ratio=(1, 1), hflip=True, flip_label_pairs=[(0, 1)])
    seen = set()
    for _ in range(40):
        clip, label = aware(to_video(frames), 0)
        mirrored = torch.allclose(
            clip, normalise_reference(np.ascontiguousarray(frames[:, :, ::-1])), atol=1e-5
        )
        assert mirrored == (label == 1)
        seen.add(label)
    assert seen == {0, 1}


def test_train_transform_shapes_and_reproducibility():
    frames = random_frames(t=8, h=120, w=160)
    transform = build_train_transform(
        112, rand_augment_ops=2, random_erasing=0.5, hflip=True, flip_label_pairs=[(0, 1)]
    )
    torch.manual_seed(3)
    first = [transform(to_video(frames), 0) for _ in range(3)]
    torch.manual_seed(3)
    again = [transform(to_video(frames), 0) for _ in range(3)]
    for (a, la), (b, lb) in zip(first, again):
        assert a.shape == (3, 8, 112, 112) and a.dtype == torch.float32
        assert torch.equal(a, b) and la == lb
    assert not torch.equal(first[0][0], first[1][0])


def test_scale_jitter_crop():
    # Short side drawn from [32, 32]: 64 x 96 halves to 32 x 48 (red 4 j + 1, green 4 i + 1), then a
    # random 32 x 32 crop: every row, and columns left .. left + 31 for a left in 0 .. 16.
    transform = build_train_transform(32, short_side_range=(32, 32))
    i = torch.arange(32, dtype=torch.float64)
    lefts = set()
    torch.manual_seed(0)
    for _ in range(12):
        clip, _ = transform(to_video(ramp_frames(t=2, h=64, w=96)), 0)
        assert clip.shape == (3, 2, 32, 32)
        red_level = float(clip[0, 0, 0, 0]) * 0.229 + 0.485  # undo the normalisation: (4 left + 1) / 255
        left = round((red_level * 255 - 1) / 4)
        assert 0 <= left <= 16
        lefts.add(left)
        red = (4 * (i + left) + 1).expand(32, 32)
        green = (4 * i + 1)[:, None].expand(32, 32)
        expected = imagenet_normalised(red, green, torch.full((32, 32), 7.0))
        for t in range(2):
            torch.testing.assert_close(clip[:, t], expected, atol=1e-5, rtol=1e-5)
    assert len(lefts) > 3  # the crop position is drawn
    with pytest.raises(ValueError, match="short_side_range"):
        build_train_transform(64, short_side_range=(32, 80))


def test_random_crop_is_the_same_in_every_frame():
    still = np.repeat(random_frames(t=1, h=96, w=96), 6, axis=0)  # six identical frames
    torch.manual_seed(0)
    clip, _ = build_train_transform(48, scale=(0.1, 0.5), random_erasing=1.0)(to_video(still), 0)
    for t in range(1, 6):
        assert torch.equal(clip[:, t], clip[:, 0])


def test_rand_augment_applies_one_draw_to_every_frame():
    built = build_train_transform(
        32, scale=(1, 1), ratio=(1, 1), rand_augment_ops=3, rand_augment_magnitude=15
    )
    still = np.repeat(random_frames(t=1, h=32, w=32), 4, axis=0)  # four identical frames
    plain = normalise_reference(still)
    changed = 0
    for seed in range(5):
        torch.manual_seed(seed)
        clip, _ = built(to_video(still), 0)
        assert all(torch.equal(clip[:, t], clip[:, 0]) for t in range(4)), seed  # one draw per clip
        changed += not torch.allclose(clip, plain, atol=1e-5)
    assert changed >= 4  # and RandAugment is really in the chain (an identity op can be drawn)

