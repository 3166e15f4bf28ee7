"""Time-based sampling on real files: a variable-frame-rate video written with known timestamps, read
back by barcode, through the decoder, the dataset and the decoded-video cache."""

from fractions import Fraction

import av
import numpy as np
import pytest

from vast.data.annotations import Annotations, VideoRecord
from vast.data.cache import DecodedVideoCache
from vast.data.dataset import VideoDataset
from vast.data.decoding import FrameFolderDecoder, ImageDecoder, PyAVDecoder
from vast.data.sampling import build_sampler

# 10 frames at 10 fps (0.0 .. 0.9 s), then 10 at 5 fps (1.0 .. 2.8 s): the video lasts 3.0 s.
TIMES = np.concatenate([np.arange(10) / 10, 1.0 + np.arange(10) * 0.2])
ENDS = np.append(TIMES[1:], 3.0)


@pytest.fixture(params=[("vfr.mp4", "libx264"), ("vfr.mkv", "mpeg4")], ids=["h264-mp4", "mpeg4-mkv"])
def vfr_video(request, tmp_path, barcode_frame_fn):
    """A file whose frame i shows barcode i and is presented at TIMES[i] seconds."""
    name, codec = request.param
    path = tmp_path / name
    clock = Fraction(1, 1000)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = clock
        stream.options = {"threads": "1", **({"crf": "12"} if codec == "libx264" else {"qscale": "2"})}
        for index, seconds in enumerate(TIMES):
            frame = av.VideoFrame.from_ndarray(barcode_frame_fn(index), format="rgb24")
            frame.pts, frame.time_base = round(seconds * 1000), clock
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture
def clip_frames(read_barcode_fn):
    """``clip_frames(dataset item) -> the barcode of each time step``."""
    return lambda item: [read_barcode_fn(item[0][:, t].permute(1, 2, 0).numpy()) for t in range(item[0].shape[1])]


def dataset(path, kind, training=False, **options):
    sampler = build_sampler(kind, 4, 2, training=training, fps=options.pop("fps", 0.0))
    return VideoDataset(Annotations([VideoRecord(path, 0)], ["a"]), sampler, on_error="raise", **options)


def test_the_decoder_gives_each_frames_presentation_time(vfr_video):
    with PyAVDecoder(vfr_video) as video:
        assert video.num_frames == 20
        np.testing.assert_allclose(video.frame_times, TIMES, atol=1e-9)
        assert video.frame_times.dtype == np.float64 and video.num_decoded == 0  # from the index alone


def test_a_tsn_clip_spans_a_variable_rate_video_evenly_in_time(vfr_video, clip_frames):
    # 4 spans of 0.75 s; at their centres (0.375, 1.125, 1.875, 2.625 s) frames 3, 10, 14 and 18 show.
    assert clip_frames(dataset(vfr_video, "tsn")[0]) == [3, 10, 14, 18]
    # By index: the centres of 4 segments of 5 frames, whatever their times.
    assert clip_frames(dataset(vfr_video, "tsn_frames")[0]) == [2, 7, 12, 17]


def test_training_draws_stay_inside_their_time_spans(vfr_video, clip_frames):
    data = dataset(vfr_video, "tsn", training=True)
    seen = [set() for _ in range(4)]
    for seed in range(12):
        for k, frame in enumerate(clip_frames(data.get(0, rng=np.random.default_rng(seed)))):
            lo, hi = 0.75 * k, 0.75 * (k + 1)
            assert TIMES[frame] < hi and ENDS[frame] > lo, (k, frame)  # on screen during span k
            seen[k].add(frame)
    assert all(len(frames) > 1 for frames in seen)  # draws, not one fixed frame


def test_dense_clips_follow_the_clock_and_the_cache_keeps_the_times(vfr_video, clip_frames):
    # 10 fps at stride 2: frames 0.2 s apart from 1.2 s (the middle start, see test_sampling).
    assert clip_frames(dataset(vfr_video, "dense", fps=10)[0]) == [11, 12, 13, 14]
    assert clip_frames(dataset(vfr_video, "dense_frames")[0]) == [7, 9, 11, 13]
    cache = DecodedVideoCache(2**30)
    for _ in range(2):  # a miss, then a hit: the times come from memory too
        assert clip_frames(dataset(vfr_video, "tsn", cache=cache)[0]) == [3, 10, 14, 18]
        assert clip_frames(dataset(vfr_video, "dense", fps=10, cache=cache)[0]) == [11, 12, 13, 14]
    assert (cache.misses, cache.hits) == (1, 3)
    np.testing.assert_allclose(cache.video(vfr_video, lambda: pytest.fail("cached")).times, TIMES, atol=1e-9)


@pytest.mark.parametrize("name", ["cfr.mp4", "cfr.mkv"])
def test_time_and_index_sampling_agree_on_a_constant_rate_file(barcode_video, clip_frames, name):
    path, _ = barcode_video(name, 37, fps=30)  # Matroska rounds 30 fps to 0, 33, 67, 100 ms ...
    with PyAVDecoder(path) as video:
        np.testing.assert_allclose(video.frame_times, np.arange(37) / 30, atol=1e-3)
    for by_time, by_index in (("tsn", "tsn_frames"), ("dense", "dense_frames")):
        assert clip_frames(dataset(path, by_time)[0]) == clip_frames(dataset(path, by_index)[0])
        for seed in range(6):
            a = dataset(path, by_time, training=True).get(0, rng=np.random.default_rng(seed))
            b = dataset(path, by_index, training=True).get(0, rng=np.random.default_rng(seed))
            assert clip_frames(a) == clip_frames(b)


def test_folders_and_images_have_even_times(tmp_path, barcode_frame_fn):
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(barcode_frame_fn(i)).save(folder / f"img_{i + 1:05d}.png")
    np.testing.assert_allclose(FrameFolderDecoder(folder, fps=25).frame_times, [0.0, 0.04, 0.08])
    assert ImageDecoder(folder / "img_00001.png").frame_times.tolist() == [0.0]
