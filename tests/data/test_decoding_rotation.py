"""Rotated videos (a display matrix, as phones write) decode upright, exactly as the ffmpeg command
line shows them; the dataset that training, evaluation and `vast predict` read gives upright clips.

The videos are lossless (H.264 in RGB at qp 0), so our frames and ffmpeg's must be equal byte for byte.
The reference tests need the ffmpeg command line and skip without it."""

import functools
import shutil
import subprocess

import av
import numpy as np
import pytest
import torch

from vast.data.annotations import Annotations, VideoRecord
from vast.data.dataset import VideoDataset
from vast.data.decoding import PyAVDecoder, display_rotation, upright
from vast.data.sampling import TSNSampler
from vast.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from vast.engine.config import DataConfig
from vast.engine.data import build_eval_dataset

FFMPEG = shutil.which("ffmpeg")


@pytest.fixture
def needs_ffmpeg(missing_tool):
    if FFMPEG is None:
        missing_tool("needs the ffmpeg command line as the reference: apt-get install ffmpeg")


can_write_rotation = hasattr(av.video.stream.VideoStream, "set_display_rotation")
NUM_FRAMES, HEIGHT, WIDTH = 4, 48, 64


def pattern_frames() -> np.ndarray:
    """Frames with no symmetry: random pixels, a different picture each frame."""
    return np.random.default_rng(7).integers(0, 256, (NUM_FRAMES, HEIGHT, WIDTH, 3), dtype=np.uint8)


def write_lossless(path, frames: np.ndarray, rotation: int = 0) -> None:
    """H.264 in RGB at qp 0 (every decoder gives back the exact pixels), with a display matrix of
    ``rotation`` degrees counter-clockwise when it is not 0 (PyAV's ``set_display_rotation``)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb", rate=8)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        stream.options = {"qp": "0", "threads": "1"}
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def ffmpeg(*args: str) -> bytes:
    return subprocess.run([FFMPEG, "-v", "error", "-nostdin", *args], check=True, capture_output=True).stdout


@functools.cache
def ffmpeg_has_display_rotation() -> bool:
    return b"-display_rotation" in ffmpeg("-h", "full")  # FFmpeg 6 and later


def ffmpeg_set_rotation(source, target, rotation: int) -> None:
    """Copy ``source`` with a display rotation of ``rotation`` degrees counter-clockwise, by the CLI."""
    if ffmpeg_has_display_rotation():
        ffmpeg("-display_rotation", str(rotation), "-i", str(source), "-c", "copy", str(target))
    else:  # FFmpeg 5 turns this tag into the same display matrix (checked with ffprobe on 5.1)
        ffmpeg("-i", str(source), "-c", "copy", "-metadata:s:v", f"rotate={rotation}", str(target))


def ffmpeg_frames(path) -> bytes:
    """What the ffmpeg command line shows: it auto-rotates by the display matrix."""
    return ffmpeg("-i", str(path), "-pix_fmt", "rgb24", "-f", "rawvideo", "-")


def decode_all(path) -> np.ndarray:
    with PyAVDecoder(path) as video:
        return video.get_frames(range(video.num_frames))


def upright_shape(rotation: int) -> tuple[int, ...]:
    return (NUM_FRAMES, WIDTH, HEIGHT, 3) if rotation % 180 else (NUM_FRAMES, HEIGHT, WIDTH, 3)


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_upright_turns_counter_clockwise(rotation):
    rgb = pattern_frames()[0]
    turned = upright(rgb, rotation)
    assert turned.flags.c_contiguous and np.array_equal(turned, np.rot90(rgb, rotation // 90))
    assert upright(rgb, rotation - 360).tobytes() == turned.tobytes()


def test_upright_costs_nothing_without_rotation():
    rgb = pattern_frames()[0]
    assert upright(rgb, 0) is rgb


def test_upright_refuses_other_angles():
    with pytest.raises(ValueError, match="multiple of 90"):
        upright(pattern_frames()[0], 45)


@pytest.mark.usefixtures("needs_ffmpeg")
@pytest.mark.parametrize("rotation", [0, 90, -90, 270, 180])
def test_rotation_set_by_ffmpeg_decodes_as_ffmpeg_shows_it(tmp_path, rotation):
    source, rotated = tmp_path / "source.mp4", tmp_path / "rotated.mp4"
    write_lossless(source, pattern_frames())
    ffmpeg_set_rotation(source, rotated, rotation)
    ours = decode_all(rotated)
    assert ours.shape == upright_shape(rotation)
    assert ours.tobytes() == ffmpeg_frames(rotated)
    # Not vacuous: the CLI wrote a counter-clockwise turn, and that is what both show.
    assert np.array_equal(ours, np.rot90(decode_all(source), rotation // 90, axes=(1, 2)))


@pytest.mark.usefixtures("needs_ffmpeg")
@pytest.mark.skipif(not can_write_rotation, reason="this PyAV cannot write a display matrix (PyAV 18.1 can)")
@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_written_by_pyav_decodes_as_ffmpeg_shows_it(tmp_path, rotation):
    path = tmp_path / "rotated.mp4"
    write_lossless(path, pattern_frames(), rotation)
    ours = decode_all(path)
    assert ours.shape == upright_shape(rotation)
    assert ours.tobytes() == ffmpeg_frames(path)


@pytest.mark.skipif(not can_write_rotation, reason="this PyAV cannot write a display matrix (PyAV 18.1 can)")
@pytest.mark.parametrize("rotation", [0, 90, -90, 180])
def test_display_rotation_reads_the_matrix_and_the_decoder_applies_it(tmp_path, rotation):
    frames = pattern_frames()
    path = tmp_path / "rotated.mp4"
    write_lossless(path, frames, rotation)
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
        stream_says = display_rotation(container.streams.video[0])
    assert display_rotation(first) == rotation % 360
    assert stream_says in (0, rotation % 360)  # PyAV 14 and later expose it on frames only
    with PyAVDecoder(path) as video:  # seeking and out-of-order picks too
        picked = video.get_frames([3, 0, 2, 2])
    assert np.array_equal(picked, np.rot90(frames[[3, 0, 2, 2]], rotation // 90, axes=(1, 2)))


@pytest.fixture
def rotated_video(tmp_path, missing_tool):
    """A 64x48 video shown as 48x64 (a quarter turn), written by PyAV or else by the ffmpeg CLI."""
    path = tmp_path / "phone.mp4"
    if can_write_rotation:
        write_lossless(path, pattern_frames(), -90)
    elif FFMPEG:
        write_lossless(tmp_path / "source.mp4", pattern_frames())
        ffmpeg_set_rotation(tmp_path / "source.mp4", path, -90)
    else:
        missing_tool("needs PyAV 18.1 or the ffmpeg command line to write a rotated video: apt-get install ffmpeg")
    return path, np.rot90(pattern_frames(), 3, axes=(1, 2))


def test_dataset_clips_are_upright(rotated_video):
    path, shown = rotated_video
    clip, _, _ = VideoDataset(Annotations([VideoRecord(path, 0)], ["a"]), TSNSampler(2))[0]
    assert clip.shape == (3, 2, WIDTH, HEIGHT)
    indices = TSNSampler(2).sample(NUM_FRAMES)[0]
    expected = torch.from_numpy(shown[indices]).permute(3, 0, 1, 2).float() / 255
    torch.testing.assert_close(clip, expected)


def test_predict_pipeline_crops_the_upright_frames(rotated_video):
    # build_eval_dataset is what `vast predict` and `vast eval` read; three crops lie along the
    # long side, which is the height once the video is upright.
    path, shown = rotated_video
    data = DataConfig(num_frames=2, crop_size=HEIGHT, short_side=HEIGHT)
    dataset = build_eval_dataset(data, Annotations([VideoRecord(path, 0)], ["a"]), crops=3)
    views, _, _ = dataset[0]
    assert views.shape == (3, 3, 2, HEIGHT, HEIGHT)
    frames = torch.from_numpy(shown[TSNSampler(2).sample(NUM_FRAMES)[0]]).float() / 255
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    for view, top in zip(views, (0, 8, 16)):
        reference = ((frames[:, top : top + HEIGHT] - mean) / std).permute(3, 0, 1, 2)
        torch.testing.assert_close(view, reference, atol=1e-5, rtol=1e-5)
