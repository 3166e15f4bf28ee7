"""Clip transforms against plain-tensor references: crops, normalisation, flips, per-clip randomness."""

import numpy as np
import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

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
    clip, _ = build_eval_transform(224)(to_video(random_frames(t=2, h=240, w=320)), 0)
    assert clip.shape == (3, 2, 224, 224)  # 240x320 -> 256x341 -> centre 224


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
    no_flip = build_train_transform(64, scale=(1, 1), ratio=(1, 1))
    labels = {no_flip(to_video(frames), 0)[1] for _ in range(20)}
    assert labels == {0}
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
    transform = build_train_transform(64, short_side_range=(64, 80))
    clip, _ = transform(to_video(random_frames(h=72, w=96)), 0)
    assert clip.shape == (3, 4, 64, 64)
    with pytest.raises(ValueError, match="short_side_range"):
        build_train_transform(64, short_side_range=(32, 80))


def test_random_crop_is_the_same_in_every_frame():
    still = np.repeat(random_frames(t=1, h=96, w=96), 6, axis=0)  # six identical frames
    torch.manual_seed(0)
    clip, _ = build_train_transform(48, scale=(0.1, 0.5), random_erasing=1.0)(to_video(still), 0)
    for t in range(1, 6):
        assert torch.equal(clip[:, t], clip[:, 0])


def test_rand_augment_applies_one_draw_to_every_frame():
    video = to_video(random_frames(t=5, h=32, w=32))
    augment = v2.RandAugment(num_ops=3, magnitude=15)
    for seed in range(8):
        torch.manual_seed(seed)
        out = augment(video)
        for t in range(5):
            # The reference: the same draw (same seed) applied to frame t alone, as an image.
            torch.manual_seed(seed)
            alone = augment(tv_tensors.Image(video[t]))
            assert torch.equal(out[t], alone), (seed, t)
    built = build_train_transform(
        32, scale=(1, 1), ratio=(1, 1), rand_augment_ops=3, rand_augment_magnitude=15
    )
    still = np.repeat(random_frames(t=1, h=32, w=32), 4, axis=0)
    for seed in range(5):
        torch.manual_seed(seed)
        clip, _ = built(to_video(still), 0)
        assert all(torch.equal(clip[:, t], clip[:, 0]) for t in range(4))


def test_functional_flip_reference_matches_numpy():
    # Guards the reference used above: torchvision's flip mirrors the width axis.
    frames = random_frames()
    assert torch.equal(
        F.horizontal_flip(to_video(frames)), to_video(np.ascontiguousarray(frames[:, :, ::-1]))
    )
