"""Frame ``i`` is the ffmpeg command line's ``i``-th frame, on files made the way real data sets are.

The reference is ``ffmpeg -i F -fps_mode passthrough -pix_fmt rgb24 -f rawvideo -``: its ``i``-th
output frame is frame ``i``. The corpus: OpenCV's sample videos (Debian's ``opencv-doc``), which
ship the problems public data sets have, and files the ffmpeg command line makes to show one
problem each. Every requested frame (first, last, single, sorted, unsorted, repeated) and, for every
file, every frame in order is compared with the reference.
"""

import gzip
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from vast.cli.main import main
from vast.data.decoding import FRAME_INDEX_CACHE, PyAVDecoder, check_video

OPENCV_DOC = Path("/usr/share/doc/opencv-doc")

# name -> (file under OPENCV_DOC, what it shows)
PUBLIC = {
    "Megamind.avi": ("examples/data/Megamind.avi", "Xvid, B-frames packed two to an AVI chunk, N-VOP placeholders"),
    "Megamind_bugy.avi": ("examples/data/Megamind_bugy.avi", "the same, re-encoded: once called 'no frames'"),
    "tree.avi": ("examples/data/tree.avi", "Cinepak drop-frame AVI: codes 68 of the 444 frames its header counts"),
    "vtest.avi": ("examples/data/vtest.avi", "MS-MPEG4v3 (DivX 3) AVI"),
    # its first packet has 'a non-intra slice in an IDR NAL unit' (concealed), an edit list cuts the last
    "box.mp4": ("opencv4/html/box.mp4.gz", "H.264 B-frames with pts equal to dts, an edit list, a damaged slice"),
    "cup.mp4": ("opencv4/html/cup.mp4.gz", "H.264 without B-frames: the fast path"),
}

# name -> ffmpeg output options for 90 frames of a 160x120, 25 fps test pattern
MADE = {
    # libxvid packs B-frames DivX-style in AVI, and flags a placeholder packet as a keyframe
    "xvid_packed.avi": ["-c:v", "libxvid", "-bf", "2", "-g", "30"],
    "mpeg4_bframes.avi": ["-c:v", "mpeg4", "-vtag", "xvid", "-bf", "2", "-g", "30"],
    "h264.avi": ["-c:v", "libx264", "-bf", "2", "-g", "30", "-threads", "1"],  # as NTU RGB+D ships
    # every third frame at 25 fps: the AVI muxer writes empty chunks for the others
    "dropframe.avi": ["-vf", r"select=not(mod(n\,3))", "-fps_mode", "passthrough", "-c:v", "mpeg4", "-g", "30"],
    # B-frames stored in decoding order, pts = dts, and an edit list that discards two packets
    "pts_equal_dts.mp4": ["-c:v", "libx264", "-bf", "2", "-g", "30", "-threads", "1", "-bsf:v", "setts=pts=DTS"],
    "good.mp4": ["-c:v", "libx264", "-bf", "2", "-g", "30", "-threads", "1"],
    "mpeg2.mpg": ["-c:v", "mpeg2video", "-bf", "2", "-g", "12"],  # MPEG-PS: not every packet has a pts
    "h264.ts": ["-c:v", "libx264", "-bf", "3", "-g", "25", "-threads", "1"],
}
DAMAGED = "damaged.mp4"  # good.mp4 with one P slice's NAL type set to IDR: FFmpeg drops that frame
# good.mp4 copied from 1.3 s: the copy starts at the keyframe before, an edit list discards 3 frames
EDIT_LIST = "edit_list.mp4"

CORPUS = [*PUBLIC, *MADE, DAMAGED, EDIT_LIST]
# Decoded by a newer FFmpeg (PyAV's) than the command line's, MS-MPEG4 frames differ in a few pixels
# by 1 (mean 0.001); distinct neighbouring frames differ by 0.025 or more (cup.mp4).
TOLERANCE = 0.01


class Corpus:
    """The corpus files, made or copied into ``folder`` when first asked for; the reference frames
    of each, decoded by the ffmpeg command line into a raw file read as a memory map."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.references: dict[str, np.ndarray] = {}

    def path(self, name: str) -> Path:
        if shutil.which("ffmpeg") is None:
            pytest.skip("the ffmpeg command line is the reference: apt-get install ffmpeg")
        path = self.folder / name
        if not path.exists():
            if name in PUBLIC:
                self._copy_public(name, path)
            elif name == DAMAGED:
                damage_one_slice(self.path("good.mp4"), path)
            elif name == EDIT_LIST:
                good = self.path("good.mp4")
                command = ["ffmpeg", "-v", "error", "-ss", "1.3", "-i", str(good), "-c", "copy", str(path)]
                subprocess.run(command, check=True, capture_output=True)
            else:
                self._make(name, path)
        return path

    def reference(self, name: str) -> np.ndarray:
        if name not in self.references:
            self.references[name] = ffmpeg_frames(self.path(name), self.folder / f"{name}.rgb")
        return self.references[name]

    def _copy_public(self, name: str, path: Path) -> None:
        source = OPENCV_DOC / PUBLIC[name][0]
        if not source.exists():
            pytest.skip(f"{source} is missing: OpenCV's sample videos come with apt-get install opencv-doc")
        with (gzip.open(source) if source.suffix == ".gz" else open(source, "rb")) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)

    def _make(self, name: str, path: Path) -> None:
        if "libxvid" in MADE[name] and "libxvid" not in _ffmpeg_encoders():
            pytest.skip("this ffmpeg has no libxvid encoder (it packs B-frames as DivX did)")
        pattern = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"]
        command = ["ffmpeg", "-v", "error", "-y", *pattern, "-frames:v", "90", *MADE[name], str(path)]
        subprocess.run(command, check=True, capture_output=True)


def _ffmpeg_encoders() -> str:
    return subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout


def ffmpeg_frames(path: Path, raw: Path) -> np.ndarray:
    """Every frame the ffmpeg command line outputs, in its order, as uint8 (N, H, W, 3)."""
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context
        height, width = codec.height, codec.width
    command = ["ffmpeg", "-v", "quiet", "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough"]
    subprocess.run([*command, "-pix_fmt", "rgb24", "-f", "rawvideo", "-y", str(raw)], check=True)
    return np.memmap(raw, dtype=np.uint8, mode="r").reshape(-1, height, width, 3)


def damage_one_slice(good: Path, damaged: Path, number: int = 40) -> None:
    """Copy ``good`` (H.264 in MP4) with the NAL header of the ``number``-th packet (in decoding order,
    a P slice) turned into an IDR slice's, which FFmpeg rejects ('Invalid inter IDR frame')."""
    data = bytearray(good.read_bytes())
    with av.open(str(good)) as container:
        packets = sorted((p for p in container.demux(video=0) if p.size), key=lambda p: p.dts)
    packet = packets[number]
    header = packet.pos + 4  # after the 4-byte NAL length of MP4's H.264
    assert not packet.is_keyframe and data[header] & 0x1F == 1, "expected a non-IDR slice"
    data[header] = 0x65
    damaged.write_bytes(bytes(data))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("real_world"))


def assert_frames_are_ffmpegs(frames: np.ndarray, indices, reference: np.ndarray, name: str) -> None:
    """Each frame equals the reference frame of its index (up to :data:`TOLERANCE`) and is no closer
    to the frames two before or after it (an identical neighbour is as close)."""
    for frame, index in zip(frames, indices):
        index = int(index)
        gap = _difference(frame, reference[index])
        assert gap <= TOLERANCE, f"{name} frame {index}: mean difference {gap:.3f} from ffmpeg's"
        for other in range(max(index - 2, 0), min(index + 3, len(reference))):
            closer = _difference(frame, reference[other])
            assert closer >= gap, f"{name}: asked for frame {index}, got ffmpeg's frame {other}"


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def requests(count: int) -> list[list[int]]:
    """Single frames (first, last, ones the issue saw wrong), sorted, unsorted and repeated lists,
    and a list that goes backwards, for a file of ``count`` frames."""
    rng = np.random.default_rng(count)
    last = count - 1
    return [
        [0],
        [last],
        [4],
        [min(196, last)],
        [count // 2],
        sorted(rng.choice(count, 8, replace=False).tolist()),
        rng.choice(count, 8, replace=False).tolist(),
        [last, 0, count // 3, count // 3, last, 1],
        list(range(last, max(last - 40, -1), -7)),
    ]


@pytest.mark.parametrize("name", CORPUS)
def test_requested_frames_are_ffmpegs(corpus, name):
    path, reference = corpus.path(name), corpus.reference(name)
    with PyAVDecoder(path, exact=name == DAMAGED) as video:
        assert video.num_frames == len(reference)
        for wanted in requests(len(reference)):
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)
    for wanted in requests(len(reference))[:5]:  # each in a decoder of its own, as a data set opens them
        with PyAVDecoder(path, exact=name == DAMAGED) as video:
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", CORPUS)
def test_every_frame_in_order_is_ffmpegs(corpus, name):
    path, reference = corpus.path(name), corpus.reference(name)
    with PyAVDecoder(path, exact=name == DAMAGED) as video:
        for start in range(0, len(reference), 16):
            wanted = list(range(start, min(start + 16, len(reference))))
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)


@pytest.mark.parametrize("name", CORPUS)
def test_no_file_ffmpeg_decodes_is_called_broken(corpus, name):
    problem = check_video(corpus.path(name))
    assert problem is None or not problem.broken, problem
    if name == DAMAGED:  # one packet gives no frame
        assert problem.category == "damaged" and problem.reason.startswith("1 of 90 packets"), problem
    else:
        assert problem is None, problem


def test_timestamped_mp4_keeps_the_packet_index_and_avi_is_indexed_by_decoding(corpus):
    with PyAVDecoder(corpus.path("good.mp4")) as video:
        assert not video._index.by_decoding
    for name in ("h264.avi", "mpeg4_bframes.avi", "pts_equal_dts.mp4", "mpeg2.mpg", "h264.ts", EDIT_LIST):
        with PyAVDecoder(corpus.path(name)) as video:
            assert video._index.by_decoding, name


@pytest.mark.parametrize("name", ["h264.avi", "xvid_packed.avi"])
def test_frames_read_through_a_cached_index_are_ffmpegs(corpus, name, monkeypatch):
    path, reference = corpus.path(name), corpus.reference(name)
    builds = []
    decode_index = PyAVDecoder._decode_index
    monkeypatch.setattr(PyAVDecoder, "_decode_index", lambda self: builds.append(1) or decode_index(self))
    FRAME_INDEX_CACHE.clear()
    PyAVDecoder(path).close()  # builds the index and keeps it
    for wanted in requests(len(reference)):
        with PyAVDecoder(path) as video:
            assert video.num_frames == len(reference)
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)
    assert builds == [1]
    FRAME_INDEX_CACHE.clear()


def test_drop_frame_avi_has_fewer_frames_than_its_header_counts(corpus):
    path = corpus.path("dropframe.avi")
    with av.open(str(path)) as container:
        header = container.streams.video[0].frames
    with PyAVDecoder(path) as video:
        assert video.num_frames == len(corpus.reference("dropframe.avi")) < header


def test_a_damaged_packet_once_decoded_renumbers_the_frames_as_ffmpeg(corpus):
    path, reference = corpus.path(DAMAGED), corpus.reference(DAMAGED)
    assert len(reference) == 89  # of 90 packets
    with PyAVDecoder(path) as video:
        assert video.num_frames == 90  # its timestamps count the damaged packet
        wanted = [35, 45, 50]  # decodes packet 40: the file is then indexed by decoding
        assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, DAMAGED)
        assert video.num_frames == 89
        for wanted in requests(89):
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, DAMAGED)


def test_vast_data_check_warns_about_damage_and_exits_0(corpus, capsys):
    names = ["dropframe.avi", DAMAGED, "h264.avi"]
    paths = [corpus.path(name) for name in names]
    listing = paths[0].parent / "listing.txt"
    listing.write_text("".join(f"{name} 0\n" for name in names))
    capsys.readouterr()
    assert main(["data", "check", str(listing), "--workers", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out[1:-1]}
    assert list(rows) == [DAMAGED] and "damaged" in rows[DAMAGED]
    assert out[-1].startswith("0 of 3 videos are broken, 1 damaged but readable")


# AVIs with B-frames: packed (DivX/Xvid style) and not, MPEG-4 Part 2 and H.264.
AVI_WITH_B_FRAMES = ["xvid_packed.avi", "Megamind.avi", "mpeg4_bframes.avi", "h264.avi"]


def _frames_decoded(path: Path, wanted, *, skip: bool, monkeypatch) -> tuple[np.ndarray, int]:
    """The frames at ``wanted`` from a new decoder, and how many it decoded; ``skip=False`` decodes
    every frame from the keyframe on, as files indexed by decoding were read before."""
    with monkeypatch.context() as patch:
        if not skip:
            patch.setattr(PyAVDecoder, "_may_skip", lambda self: False)
        with PyAVDecoder(path) as video:
            return video.get_frames(wanted), video.num_decoded


@pytest.mark.parametrize("name", AVI_WITH_B_FRAMES)
def test_a_sparse_clip_from_an_avi_drops_unwanted_b_frames(corpus, name, monkeypatch):
    path, reference = corpus.path(name), corpus.reference(name)
    count = len(reference)
    wanted = [(2 * segment + 1) * count // 16 for segment in range(8)]  # TSN's evaluation clip
    frames, skipping = _frames_decoded(path, wanted, skip=True, monkeypatch=monkeypatch)
    assert_frames_are_ffmpegs(frames, wanted, reference, name)
    _, decoding_all = _frames_decoded(path, wanted, skip=False, monkeypatch=monkeypatch)
    assert skipping < decoding_all, (skipping, decoding_all)


def _b_frames(path: Path) -> list[int]:
    """Indices of the frames the decoder outputs as B-frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        types = [frame.pict_type for frame in container.decode(stream)]
    # PyAV 18 gives FFmpeg's AVPictureType number (3 is B), older PyAV a letter or an enum member.
    return [index for index, kind in enumerate(types) if kind in (3, "B") or getattr(kind, "name", "") == "B"]


@pytest.mark.parametrize("name", ["xvid_packed.avi", "Megamind.avi"])
def test_wanted_packed_b_frames_are_decoded_among_skipped_ones(corpus, name):
    # The first B-frame after each P-frame is packed into the P-frame's chunk and decoded under the
    # next packet's timestamp: dropping pictures by packet timestamp unfiltered loses it (no frame).
    path, reference = corpus.path(name), corpus.reference(name)
    b_frames = _b_frames(path)
    assert len(b_frames) > len(reference) // 3
    for wanted in (b_frames[::2], b_frames[1::2], b_frames[::3][::-1]):
        with PyAVDecoder(path) as video:
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)
    for index in b_frames[:: len(b_frames) // 8]:  # alone, in a decoder of its own: after a seek
        with PyAVDecoder(path) as video:
            assert_frames_are_ffmpegs(video.get_frames([index]), [index], reference, name)
