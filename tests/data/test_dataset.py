"""VideoDataset on real files: the frames of each item (by barcode), multi-view order, seeding across
DataLoader workers, and broken videos."""

import logging
import pickle

import av
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from vast.data.annotations import Annotations, VideoRecord, load_annotations
from vast.data.dataset import BrokenVideo, BrokenVideoLog, VideoBatch, VideoDataset, collate_videos
from vast.data.sampling import DenseSampler, MultiViewSampler, TSNSampler
from vast.data.transforms import IMAGENET_MEAN, IMAGENET_STD, LabelAwareHorizontalFlip, build_eval_transform
from vast.errors import DataError


@pytest.fixture
def barcode_set(tmp_path, barcode_video):
    """Three 40-frame videos and a list file labelling them 2, 0, 1."""
    for name in ("a", "b", "c"):
        barcode_video(f"videos/{name}.mp4", 40)
    listing = tmp_path / "videos.txt"
    listing.write_text("videos/a.mp4 2\nvideos/b.mp4 0\nvideos/c.mp4 1\n")
    return load_annotations(listing)


@pytest.fixture
def clip_barcodes(read_barcode_fn):
    """``clip_barcodes(clip (C, T, H, W) in [0, 1]) -> frame index of each time step``."""
    return lambda clip: [read_barcode_fn(clip[:, t].permute(1, 2, 0).numpy()) for t in range(clip.shape[1])]


def test_items_hold_the_sampled_frames(barcode_set, clip_barcodes):
    dataset = VideoDataset(barcode_set, DenseSampler(4, 3))
    assert len(dataset) == 3 and dataset.labels == [2, 0, 1]
    clip, label, index = dataset[1]
    assert clip.shape == (3, 4, 48, 64) and clip.dtype == torch.float32
    assert clip.min() >= 0 and clip.max() <= 1
    assert (label, index) == (0, 1)
    # 40 frames, span 10: 31 starts, the middle one is 15.
    assert clip_barcodes(clip) == [15, 18, 21, 24]
    tsn_clip, _, _ = VideoDataset(barcode_set, TSNSampler(4))[0]
    assert clip_barcodes(tsn_clip) == [5, 15, 25, 35]


def test_multi_view_stacks_clips_then_crops(barcode_set):
    sampler = MultiViewSampler(DenseSampler(4, 2), num_clips=3)
    dataset = VideoDataset(barcode_set, sampler, build_eval_transform(48, num_crops=3), multi_view=True)
    views, label, _ = dataset[2]
    assert views.shape == (9, 3, 4, 48, 48) and label == 1
    # The reference: decode the clips' frames with PyAV directly, crop by slicing, normalise.
    with av.open(str(barcode_set.records[2].path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    for k, indices in enumerate(sampler.sample(40)):
        for c, left in enumerate((0, 8, 16)):
            crop = torch.from_numpy(frames[indices, :, left : left + 48]).float() / 255
            reference = ((crop - mean) / std).permute(3, 0, 1, 2)
            torch.testing.assert_close(views[k * 3 + c], reference, atol=1e-5, rtol=1e-5)


def test_multi_clip_sampler_needs_multi_view(barcode_set):
    with pytest.raises(ValueError, match="multi_view=True"):
        VideoDataset(barcode_set, MultiViewSampler(TSNSampler(4), 2))


def test_label_follows_a_flip(barcode_set):
    flip = v2.Compose([LabelAwareHorizontalFlip([(0, 1)], p=1.0), v2.ToDtype(torch.float32, scale=True)])
    dataset = VideoDataset(barcode_set, TSNSampler(2), transform=flip)
    assert [dataset[i][1] for i in range(3)] == [2, 1, 0]


def sampled_frames(loader, clip_barcodes):
    return [clip_barcodes(clip) for batch in loader for clip in batch.clips]


def test_training_is_reproducible_and_workers_draw_differently(tmp_path, barcode_video, clip_barcodes):
    path, _ = barcode_video("long.mp4", 200)
    annotations = Annotations([VideoRecord(path, 0)] * 6, ["only"])
    dataset = VideoDataset(annotations, TSNSampler(4, training=True))
    pickle.dumps(dataset)  # nothing unpicklable (no open decoder) goes to the workers

    def epochs(workers):
        torch.manual_seed(0)
        loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=collate_videos)
        return sampled_frames(loader, clip_barcodes), sampled_frames(loader, clip_barcodes)

    first, second = epochs(0)
    assert epochs(0) == (first, second)  # same torch seed, same clips
    assert first != second  # the next epoch draws new clips
    two_workers = epochs(2)
    assert epochs(2) == two_workers
    # Worker 0 reads items 0, 2, 4 and worker 1 items 1, 3, 5: with a shared seed they would match.
    clips = two_workers[0]
    assert [clips[0], clips[2], clips[4]] != [clips[1], clips[3], clips[5]]
    for clip in clips:  # one random frame in each quarter of the video
        assert [index // 50 for index in clip] == [0, 1, 2, 3]


@pytest.fixture
def with_broken(tmp_path, barcode_video, broken_files):
    good, _ = barcode_video("good.mp4", 20)
    records = [VideoRecord(good, 0), VideoRecord(broken_files["truncated"], 1), VideoRecord(good, 1)]
    records += [VideoRecord(broken_files["missing file"], 0), VideoRecord(broken_files["zero-length"], 0)]
    return Annotations(records, ["a", "b"])


def test_broken_videos_are_skipped_counted_and_never_replaced(with_broken, caplog):
    dataset = VideoDataset(with_broken, DenseSampler(4, training=True), on_error="skip")
    with caplog.at_level(logging.WARNING, logger="vast.data.dataset"):
        marker = dataset[1]
    assert isinstance(marker, BrokenVideo) and marker.index == 1 and marker.category == "truncated"
    assert "truncated.mp4" in caplog.text and "truncated" in caplog.text
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_videos)
    log = BrokenVideoLog()
    seen_indices = []
    for batch in loader:
        assert isinstance(batch, VideoBatch)
        assert batch.clips.shape[0] == len(batch.labels) == len(batch.indices)
        seen_indices += batch.indices.tolist()
        log.add(batch.broken)
    assert seen_indices == [0, 2]  # the good items, each once; nothing stands in for the broken ones
    assert log.count == 3
    assert [p.split("/")[-1] for p in log.paths] == ["truncated.mp4", "never_written.mp4", "empty.mp4"]
    log.add([BrokenVideo(1, "again", "truncated", "seen twice")])
    assert log.count == 3
    assert log.summary("missing").startswith("3 broken videos missing: ")


def test_a_batch_of_only_broken_videos_is_empty(with_broken):
    dataset = VideoDataset(with_broken, TSNSampler(4))
    batch = collate_videos([dataset[3], dataset[4]])
    assert batch.clips.numel() == 0 and batch.labels.tolist() == [] and len(batch.broken) == 2
    assert BrokenVideoLog().summary() == "0 broken videos skipped"


def test_on_error_raise(with_broken):
    dataset = VideoDataset(with_broken, TSNSampler(4), on_error="raise")
    assert dataset[0][2] == 0
    with pytest.raises(DataError, match=r"never_written\.mp4: missing file"):
        dataset[3]
    with pytest.raises(ValueError, match="on_error"):
        VideoDataset(with_broken, TSNSampler(4), on_error="ignore")


def test_frame_folder_videos_in_a_dataset(tmp_path, barcode_frame_fn, clip_barcodes):
    from PIL import Image

    folder = tmp_path / "frames" / "clip_1"
    folder.mkdir(parents=True)
    for i in range(10):
        Image.fromarray(barcode_frame_fn(i)).save(folder / f"img_{i + 1:05d}.png")
    dataset = VideoDataset(Annotations([VideoRecord(folder, 0)], ["x"]), TSNSampler(5))
    assert clip_barcodes(dataset[0][0]) == [1, 3, 5, 7, 9]


def test_get_with_an_explicit_generator(tmp_path, barcode_video, clip_barcodes):
    path, _ = barcode_video("long.mp4", 200)
    dataset = VideoDataset(Annotations([VideoRecord(path, 0)], ["only"]), TSNSampler(4, training=True))
    first = clip_barcodes(dataset.get(0, rng=np.random.default_rng(5))[0])
    assert clip_barcodes(dataset.get(0, rng=np.random.default_rng(5))[0]) == first
    # The same draws through the sampler alone: the dataset adds nothing random to the frame choice.
    assert first == TSNSampler(4, training=True).sample(200, np.random.default_rng(5))[0].tolist()


def test_items_run_on_one_torch_thread_and_restore_the_count(barcode_set):
    seen = []

    def spy(video, label):
        seen.append(torch.get_num_threads())
        return video.float(), label

    dataset = VideoDataset(barcode_set, TSNSampler(2), transform=spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        dataset[0]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == [1]
