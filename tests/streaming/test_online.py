"""Online recognition of a source: frames taken at the training rate, pre-processed as in evaluation,
and the running prediction equal to the offline model's on every prefix."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vast.data.decoding import PyAVDecoder
from vast.data.transforms import build_eval_transform, to_video
from vast.engine.evaluate import load_run
from vast.errors import ConfigError
from vast.streaming.overlay import OverlayWriter, plot_timeline
from vast.streaming.recognizer import OnlineRecognizer, frame_every
from vast.streaming.source import FrameSource, SourceError


def _first_val(tiny_demo) -> Path:
    line = Path(tiny_demo.val).read_text().splitlines()[0]
    return Path(tiny_demo.val).parent / line.split()[0]


def _decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_the_source_yields_every_frame_in_order_with_times(tiny_demo):
    path = _first_val(tiny_demo)
    expected = _decoded(path)
    with FrameSource(str(path)) as source:
        frames = list(source)
        assert source.frame_count == len(expected) and not source.live
    assert [f.index for f in frames] == list(range(len(expected)))
    np.testing.assert_array_equal(np.stack([f.rgb for f in frames]), expected)
    times = np.array([f.time for f in frames])
    assert times[0] == 0 and np.allclose(np.diff(times), 1 / source.fps)


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match=r"source not found: .*missing\.mp4"):
        FrameSource(str(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(SourceError, match=r"cannot open .*junk.mp4: .*give a video file"):
        FrameSource(str(junk))


def test_every_step_equals_the_offline_model_on_the_frames_so_far(causal_run, tiny_demo):
    run = load_run(causal_run)
    every = frame_every(run.config)
    assert every == 2  # the run's dense stride
    path = _first_val(tiny_demo)
    recognizer = OnlineRecognizer(run, every)
    with FrameSource(str(path)) as source:
        updates = [u for u in map(recognizer.push, source) if u is not None]
    taken = _decoded(path)[::every]
    data = run.config.data
    transform = build_eval_transform(data.crop_size, short_side=data.short_side, mean=data.mean, std=data.std)
    clip = transform(to_video(taken))[None]  # (1, 3, T, crop, crop), as evaluation reads it
    assert len(updates) == len(taken)
    with torch.no_grad():
        for t, update in enumerate(updates, 1):
            offline = run.model(clip[:, :, :t]).softmax(-1)[0]
            torch.testing.assert_close(update.probabilities, offline, atol=1e-4, rtol=0)
            assert update.frame == (t - 1) * every and update.step == t


def test_the_frame_rate_comes_from_the_dense_stride_or_every(causal_run):
    config = load_run(causal_run).config
    assert frame_every(config, 3) == 3
    with pytest.raises(ConfigError, match="--every must be"):
        frame_every(config, 0)
    config.data.sampler = "dense_frames"  # the stride by frame index: the same frame rate
    assert frame_every(config) == config.data.stride
    for tsn in ("tsn", "tsn_frames"):
        config.data.sampler = tsn
        with pytest.raises(ConfigError, match=r"TSN segments .* give --every N"):
            frame_every(config)


def test_the_overlay_keeps_every_frame_and_draws_the_labels(causal_run, tiny_demo, tmp_path):
    run = load_run(causal_run)
    path = _first_val(tiny_demo)
    recognizer = OnlineRecognizer(run, 2)
    out = tmp_path / "overlay.mp4"
    updates = []
    with FrameSource(str(path)) as source, OverlayWriter(out, source.fps, run.class_names) as writer:
        for frame in source:
            update = recognizer.push(frame)
            updates += [update] if update else []
            writer.write(frame.rgb, updates[-1] if updates else None)
    written = _decoded(out)
    source_frames = _decoded(path)
    assert len(written) == len(source_frames)
    scale = written.shape[1] // source_frames.shape[1]
    assert scale * source_frames.shape[1] >= 360
    # Away from the label box the picture is the source's, enlarged; in the box it is not.
    enlarged = source_frames.repeat(scale, 1).repeat(scale, 2)
    h = written.shape[1]
    assert np.abs(written[:, h // 2 :, :].astype(int) - enlarged[:, h // 2 :, :]).mean() < 4
    assert np.abs(written[:, :20, :60].astype(int) - enlarged[:, :20, :60]).mean() > 20
    png = plot_timeline(updates, run.class_names, tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not hasattr(av.video.stream.VideoStream, "set_display_rotation"),
                    reason="this PyAV cannot write a display matrix (PyAV 18.1 can)")  # fmt: skip
def test_a_phone_video_streams_upright_as_the_decoder_reads_it(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as container:  # lossless, held upright: a display matrix of -90 degrees
        stream = container.add_stream("libx264rgb", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "rgb24"
        stream.options = {"qp": "0", "threads": "1"}
        stream.set_display_rotation(-90)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    with FrameSource(str(path)) as source:
        streamed = np.stack([f.rgb for f in source])
    with PyAVDecoder(path) as video:  # the training / eval decoder, checked against ffmpeg in tests/data
        np.testing.assert_array_equal(streamed, video.get_frames(range(3)))
    np.testing.assert_array_equal(streamed, np.rot90(frames, k=-1, axes=(1, 2)))  # turned clockwise
