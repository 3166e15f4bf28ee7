"""Decoding real files: the right frames (read back from their barcodes), seeking, clamping, backends,
and the classification of broken files."""

import contextlib
import pickle

import av
import numpy as np
import pytest
import torch
from PIL import Image

from vast.data.decoding import (
    BROKEN_CATEGORIES,
    BrokenVideoError,
    FrameFolderDecoder,
    PyAVDecoder,
    check_video,
    check_videos,
    open_video,
)
from vast.data.decoding import container as decoding_container
from vast.data.decoding import packets as decoding_packets
from vast.errors import DataError


@pytest.fixture
def barcodes(read_barcode_fn):
    """``barcodes(frames) -> [index of each frame]``."""
    return lambda frames: [read_barcode_fn(frame) for frame in frames]


def decode_all_with_pyav(path) -> list[np.ndarray]:
    """The obvious reference: decode every packet in order with PyAV directly, passing over packets
    that do not decode, as the ffmpeg command line does (a file cut short still gives the frames
    its decoder held back when the cut packet fails)."""
    frames = []
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            with contextlib.suppress(av.FFmpegError):
                frames.extend(frame.to_ndarray(format="rgb24") for frame in packet.decode())
    return frames


@pytest.fixture
def gop_video(barcode_video):
    # Keyframes every 10 frames and B-frames (preset medium), the case where seeking matters.
    return barcode_video("gop.mp4", 100, gop=10, preset="medium", options={"sc_threshold": "0"})


def test_frames_come_back_by_index_in_any_order(gop_video, barcodes):
    path, written = gop_video
    with PyAVDecoder(path) as video:
        assert video.num_frames == 100
        assert video.fps == pytest.approx(8.0)
        for wanted in ([0], [95], [3, 50, 51, 99], [99, 0, 5, 5, 60], list(range(100))):
            frames = video.get_frames(wanted)
            assert frames.dtype == np.uint8 and frames.shape == (len(wanted), 48, 64, 3)
            assert barcodes(frames) == wanted
            assert np.abs(frames.astype(int) - written[wanted]).mean() < 3


def test_frames_equal_a_full_sequential_decode(gop_video):
    path, _ = gop_video
    reference = decode_all_with_pyav(path)
    wanted = [97, 12, 13, 40, 41, 42, 75, 12]
    with PyAVDecoder(path) as video:
        frames = video.get_frames(wanted)
    for frame, index in zip(frames, wanted):
        np.testing.assert_array_equal(frame, reference[index])


def test_seeking_decodes_only_from_the_keyframe_before(gop_video):
    path, _ = gop_video
    with PyAVDecoder(path) as video:
        video.get_frames([95])
        # From keyframe 90 to frame 95, plus what the decoder buffers for B-frames.
        assert video.num_decoded <= 10
        video.num_decoded = 0
        video.get_frames([5, 55, 95])  # three separate GOPs: three seeks, not 96 frames
        assert video.num_decoded <= 3 * 10


def test_as_tensor_and_threads_give_the_same_frames(gop_video):
    path, _ = gop_video
    with PyAVDecoder(path) as single, PyAVDecoder(path, threads=2) as threaded:
        frames = single.get_frames([1, 30, 77])
        tensor = threaded.get_frames([1, 30, 77], as_tensor=True)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.uint8
    np.testing.assert_array_equal(tensor.numpy(), frames)


def test_webm_without_a_frame_count_in_its_header(barcode_video, barcodes):
    path, _ = barcode_video("clip.webm", 40, codec="libvpx-vp9")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # the header does not say
    with open_video(path) as video:
        assert video.num_frames == 40
        assert barcodes(video.get_frames([0, 39, 20])) == [0, 39, 20]


def test_truncated_file_is_clamped_to_its_last_decodable_frame(barcode_video, tmp_path, barcodes):
    path, _ = barcode_video("long.webm", 60, codec="libvpx-vp9")
    cut = tmp_path / "cut.webm"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    with open_video(cut) as video:
        assert 0 < video.num_frames < 60
        frames = video.get_frames([0, 10, 59])
    # Index 59 is past the end: it gets the last frame that decodes.
    last = barcodes(decode_all_with_pyav(cut))[-1]
    assert barcodes(frames) == [0, 10, last] and last < 59


def test_get_frames_rejects_negative_and_empty_indices(gop_video):
    path, _ = gop_video
    with PyAVDecoder(path) as video:
        with pytest.raises(ValueError, match=">= 0"):
            video.get_frames([-1])
        with pytest.raises(ValueError, match="at least one"):
            video.get_frames([])


def test_decoders_refuse_to_be_pickled(gop_video):
    path, _ = gop_video
    with PyAVDecoder(path) as video, pytest.raises(TypeError, match="inside the worker"):
        pickle.dumps(video)


@pytest.mark.parametrize("extension", [".png", ".jpg"])
def test_frame_folder_backend(tmp_path, extension, barcodes, barcode_frame_fn):
    folder = tmp_path / "video_0001"
    folder.mkdir()
    written = [barcode_frame_fn(i) for i in range(12)]
    for i, frame in enumerate(written):
        Image.fromarray(frame).save(folder / f"img_{i + 1:05d}{extension}", quality=95)
    (folder / "notes.txt").write_text("not a frame")
    video = open_video(folder, fps=25)
    assert isinstance(video, FrameFolderDecoder)
    assert video.num_frames == 12 and video.fps == 25
    frames = video.get_frames([11, 0, 4, 4])
    assert barcodes(frames) == [11, 0, 4, 4]
    if extension == ".png":  # lossless: exact pixels
        np.testing.assert_array_equal(frames[0], written[11])


def test_frame_folder_orders_by_number_not_by_name(tmp_path, barcodes, barcode_frame_fn):
    folder = tmp_path / "unpadded"
    folder.mkdir()
    for i in range(1, 12):  # img_1.png ... img_11.png: name order would put 10 and 11 before 2
        Image.fromarray(barcode_frame_fn(i)).save(folder / f"img_{i}.png")
    assert barcodes(FrameFolderDecoder(folder).get_frames([0, 1, 9, 10])) == [1, 2, 10, 11]


def test_each_broken_kind_fails_to_open_with_its_category(broken_files):
    for category, path in broken_files.items():
        with pytest.raises(BrokenVideoError) as info:
            open_video(path).get_frames([0])
        assert info.value.category == category, path
        assert isinstance(info.value, DataError)
        assert str(path) in str(info.value)


def test_check_video_names_every_broken_kind(broken_files, barcode_video):
    good, _ = barcode_video("fine.mp4", 8)
    assert check_video(good) is None
    for category, path in broken_files.items():
        problem = check_video(path)
        assert problem is not None and problem.category == category, (path, problem)
        assert problem.category in BROKEN_CATEGORIES and problem.reason


def test_check_video_finds_a_truncated_webm(barcode_video, tmp_path):
    path, _ = barcode_video("long.webm", 60, codec="libvpx-vp9")
    cut = tmp_path / "cut.webm"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    problem = check_video(cut)
    assert problem is not None and problem.category == "truncated"


def test_check_videos_keeps_input_order_with_workers(broken_files, barcode_video):
    good, _ = barcode_video("fine.mp4", 8)
    paths = [good, *broken_files.values(), good]
    problems = check_videos(paths, workers=2)
    assert [p.category for p in problems] == list(broken_files)
    assert check_videos(paths, workers=1) == problems


@pytest.mark.parametrize("seek", ["lands_at_the_end", "does_nothing", "fails"])
def test_a_seek_that_misses_falls_back_to_decoding_from_the_start(gop_video, barcodes, monkeypatch, seek):
    path, _ = gop_video

    def bad_seek(self, pts):
        if seek == "lands_at_the_end":  # past every wanted frame
            self._container.seek(int(self._pts[-1]), stream=self._stream, backward=True)
        elif seek == "fails":
            raise av.FFmpegError(1, "seek refused")

    monkeypatch.setattr(PyAVDecoder, "_seek", bad_seek)
    with PyAVDecoder(path) as video:
        # "does_nothing" leaves the demuxer at the end of the file, where the packet index left it.
        assert barcodes(video.get_frames([42, 7, 43, 90])) == [42, 7, 43, 90]


def test_mp4_whose_header_promises_more_frames_than_the_file_holds(barcode_video, tmp_path, barcodes):
    # faststart puts the index (with all 80 frames) first; cutting the file keeps that header.
    path, _ = barcode_video("fast.mp4", 80, container_options={"movflags": "+faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 6 // 10])
    with av.open(str(cut)) as container:
        assert container.streams.video[0].frames == 80
    with open_video(cut) as video:
        assert video.num_frames < 80  # counted from the packets that are there
        frames = video.get_frames([0, 20, 79])
    last = barcodes(decode_all_with_pyav(cut))[-1]
    assert barcodes(frames) == [0, 20, last] and 20 < last < 79
    assert check_video(cut).category == "truncated"


def test_cover_art_is_not_taken_for_the_video(tmp_path):
    path = tmp_path / "with_cover.mp4"
    with av.open(str(path), "w") as container:
        cover = container.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 32, 32, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        video = container.add_stream("libx264", rate=8)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        art = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        container.mux(cover.encode(art.reformat(format="yuvj420p")))
        container.mux(cover.encode(None))
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
    with av.open(str(path)) as container:
        pictures = [decoding_container._is_picture(s) for s in container.streams.video]
    assert sorted(pictures) == [False, True]
    with open_video(path) as decoder:
        assert decoder.num_frames == 10
        frames = decoder.get_frames([0, 9])
    assert frames.shape == (2, 48, 64, 3) and abs(int(frames[1].mean()) - 180) < 8


def test_unwanted_non_reference_frames_are_not_decoded(barcode_video, barcodes):
    # One GOP of 120 frames with B-frames: reaching frame 110 needs the reference frames only.
    path, _ = barcode_video("one_gop.mp4", 120, preset="medium", gop=250, options={"sc_threshold": "0"})
    reference = decode_all_with_pyav(path)
    wanted = [7, 22, 37, 52, 67, 82, 97, 110]  # TSN-like: one frame every 15
    with PyAVDecoder(path) as video:
        frames = video.get_frames(wanted)
        decoded = video.num_decoded
    for frame, index in zip(frames, wanted):
        np.testing.assert_array_equal(frame, reference[index])
    assert barcodes(frames) == wanted
    assert decoded < 0.8 * 111  # x264's B-pyramid leaves about half the B-frames unreferenced


@pytest.fixture
def av1_video(barcode_video):
    """``make(extension, **options) -> path``: 100 barcode frames 64x64 in AV1 from PyAV's own
    SVT-AV1, a keyframe every 40 frames, as the issue's file (made with the ffmpeg command line)."""
    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this PyAV's FFmpeg has no libsvtav1 encoder")

    def make(extension: str, **options: str):
        path, _ = barcode_video(f"av1{extension}", 100, codec="libsvtav1", gop=40, size=(64, 64), options=options)
        return path

    return make


@pytest.mark.parametrize("extension", [".mkv", ".webm", ".mp4"])
def test_av1_frames_asked_alone_in_fresh_decoders(av1_video, barcodes, extension):
    # libdav1d keeps the skip setting of the first packet for good: frame 3 (not a keyframe) was
    # called broken, 81 came back as keyframe 80.
    path = av1_video(extension, preset="12")
    for wanted in ([3], [81], [0], [99], [50, 62, 99], [99, 3, 3, 41]):
        with open_video(path) as video:
            assert video.num_frames == 100
            assert barcodes(video.get_frames(wanted)) == wanted, (extension, wanted)
    assert check_video(path) is None


def test_av1_with_forward_keyframes(av1_video, barcodes):
    # irefresh-type=1: the keyframes after the first are shown from a later packet than their own.
    path = av1_video(".mkv", preset="12", **{"svtav1-params": "irefresh-type=1"})
    for wanted in ([3], [41], [81], [79, 80, 81]):
        with open_video(path) as video:
            assert barcodes(video.get_frames(wanted)) == wanted, wanted


def test_a_decoder_that_ignores_skip_all_on_opening_decodes_every_frame(av1_video, barcodes, monkeypatch):
    """Were libdav1d taken for a decoder that can be told per packet, opening would see it output
    keyframes while told to skip all, and stop skipping with a fresh decoder."""
    path = av1_video(".mkv", preset="12")
    monkeypatch.setattr(decoding_packets, "_skips_per_packet", lambda codec: True)
    with PyAVDecoder(path) as video:
        assert not video._may_skip()
        assert barcodes(video.get_frames([3, 81])) == [3, 81]


def test_a_wanted_frame_lost_to_skipping_makes_the_request_decode_every_frame(av1_video, barcodes, monkeypatch):
    """Skipping is told per packet, the decoder drops others (libdav1d, with nothing to catch it
    on opening): the request is decoded again without skipping, and so are the next ones."""
    path = av1_video(".mkv", preset="12")
    demux_index = decoding_packets._demux_index

    def demux_only(*args):  # as for a decoder that cannot be told: nothing decoded on opening
        with monkeypatch.context() as patch:
            patch.setattr(decoding_packets, "_skips_per_packet", lambda codec: False)
            return demux_index(*args)

    monkeypatch.setattr(decoding_packets, "_skips_per_packet", lambda codec: True)
    monkeypatch.setattr(decoding_packets, "_demux_index", demux_only)
    for wanted in ([3], [81], [50, 62, 99, 5]):  # 3, 81 and 5 are not references: libdav1d drops them
        with PyAVDecoder(path) as video:
            assert video._may_skip()
            assert barcodes(video.get_frames(wanted)) == wanted
            assert not video._may_skip()
            assert barcodes(video.get_frames([7, 6])) == [7, 6]
