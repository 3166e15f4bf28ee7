"""The decoded-video cache: clips taken from memory are the frames PyAV decodes from the file, a
rewritten file is read again, and the byte budget holds."""

import os

import av
import numpy as np
import pytest
import torch

from vast.data.annotations import load_annotations
from vast.data.cache import DecodedVideo, DecodedVideoCache, shared_cache
from vast.data.dataset import VideoDataset
from vast.data.sampling import MultiViewSampler, TSNSampler
from vast.data.transforms import build_train_transform
from vast.engine.config import load_config
from vast.errors import ConfigError


def pyav_frames(path) -> np.ndarray:
    """The reference: every frame of ``path`` as PyAV decodes it, front to back."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def pyav_video(path) -> DecodedVideo:
    frames = pyav_frames(path)
    return DecodedVideo(frames, np.arange(len(frames)) / 8.0)


@pytest.fixture
def listing(tmp_path, barcode_video):
    for name, frames in (("a", 20), ("b", 33), ("c", 9)):
        barcode_video(f"videos/{name}.mp4", frames)
    path = tmp_path / "videos.txt"
    path.write_text("videos/a.mp4 0\nvideos/b.mp4 1\nvideos/c.mp4 2\n")
    return load_annotations(path)


def seeded_items(dataset, seed, repeats=2):
    items = []
    for _ in range(repeats):
        for index in range(len(dataset)):
            torch.manual_seed(seed + index)
            items.append(dataset.get(index, rng=np.random.default_rng(seed + index)))
    return items


def test_training_clips_from_the_cache_are_the_decoded_frames(listing, read_barcode_fn):
    transform = build_train_transform(32, scale=(0.5, 1.0), hflip=True)
    sampler = TSNSampler(4, training=True)
    plain = VideoDataset(listing, sampler, transform)
    cache = DecodedVideoCache(2**30)
    cached = VideoDataset(listing, sampler, transform, cache=cache)
    for a, b in zip(seeded_items(plain, 7), seeded_items(cached, 7), strict=True):
        assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert (cache.misses, cache.hits, len(cache)) == (3, 3, 3)
    # The cached array is the file's every frame, as PyAV decodes it.
    cached_b = cache.video(listing.records[1].path, lambda: pytest.fail("b.mp4 should be cached"))
    assert np.array_equal(cached_b.frames, pyav_frames(listing.records[1].path))
    assert [read_barcode_fn(frame) for frame in cached_b.frames] == list(range(33))
    np.testing.assert_allclose(cached_b.times, np.arange(33) / 8)  # the fixture's 8 fps


def test_multi_view_clips_from_the_cache(listing):
    sampler = MultiViewSampler(TSNSampler(3), num_clips=2)
    plain = VideoDataset(listing, sampler, multi_view=True)
    cached = VideoDataset(listing, sampler, multi_view=True, cache=DecodedVideoCache(2**30))
    for index in range(3):
        for _ in range(2):
            assert torch.equal(plain[index][0], cached[index][0])


def test_cached_frames_are_read_only(listing):
    cache = DecodedVideoCache(2**30)
    video = cache.video(listing.records[0].path, lambda: pyav_video(listing.records[0].path))
    with pytest.raises(ValueError):
        video.frames[0, 0, 0, 0] = 1
    with pytest.raises(ValueError):
        video.times[0] = 1


def test_a_rewritten_file_is_decoded_again(tmp_path, barcode_video, read_barcode_fn):
    path, _ = barcode_video("v.mp4", 10)
    cache = DecodedVideoCache(2**30)
    decode = lambda: pyav_video(path)  # noqa: E731
    assert len(cache.video(path, decode).frames) == 10
    barcode_video("v.mp4", 14)
    os.utime(path, ns=(1, 1))  # even within the same mtime tick the size differs; make both differ
    frames = cache.video(path, decode).frames
    assert [read_barcode_fn(f) for f in frames] == list(range(14))
    assert cache.misses == 2


def test_the_byte_budget_drops_the_least_recently_used(tmp_path):
    videos = {}
    for name in "abcd":
        path = tmp_path / name
        path.write_bytes(name.encode())
        videos[name] = path
    # 768 bytes of frames and 32 of times each
    videos_of = {n: DecodedVideo(np.full((4, 8, 8, 3), i, np.uint8), np.arange(4.0)) for i, n in enumerate("abcd")}
    cache = DecodedVideoCache(3 * 800)
    for name in "abc":
        cache.video(videos[name], lambda n=name: videos_of[n])
    cache.video(videos["a"], lambda: pytest.fail("a is cached"))  # a is now the most recently used
    cache.video(videos["d"], lambda: videos_of["d"])  # drops b
    assert cache.bytes == 3 * 800 and len(cache) == 3
    calls = []
    cache.video(videos["b"], lambda: calls.append("b") or videos_of["b"])
    assert calls == ["b"]
    cache.resize(800)
    assert len(cache) == 1 and cache.bytes == 800
    # A video larger than the whole budget is returned and not kept.
    big = DecodedVideo(np.zeros((8, 8, 8, 3), np.uint8), np.arange(8.0))
    assert cache.video(videos["c"], lambda: big) is big and len(cache) == 1


def test_one_cache_per_process():
    assert shared_cache(0) is None
    first = shared_cache(1)
    assert shared_cache(1) is first and first.max_bytes == 2**20
    assert shared_cache(2) is first and first.max_bytes == 2**21


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.cache_mb=64", "data.num_workers=2"], "data.num_workers=0"),
        (["data.cache_mb=-1"], "data.cache_mb must be 0"),
    ],
)
def test_config_checks_the_cache(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("study", overrides)


def test_the_engine_datasets_share_the_process_cache(listing, tmp_path):
    from vast.engine.data import build_eval_dataset, build_train_dataset

    listed = str(tmp_path / "videos.txt")
    plain = load_config("study", [f"data.train={listed}", f"data.val={listed}", "data.cache_mb=0"])
    cached = load_config("study", [f"data.train={listed}", f"data.val={listed}", "data.cache_mb=16"])
    train_a, train_b = build_train_dataset(plain.data, seed=3), build_train_dataset(cached.data, seed=3)
    assert train_a.dataset.cache is None and train_b.dataset.cache is shared_cache(16)
    for epoch in (0, 1):
        train_a.set_epoch(epoch)
        train_b.set_epoch(epoch)
        for index in range(3):
            assert torch.equal(train_a[index][0], train_b[index][0])
    evaluation = build_eval_dataset(cached.data)
    assert evaluation.cache is train_b.dataset.cache
    assert torch.equal(evaluation[1][0], build_eval_dataset(plain.data)[1][0])
