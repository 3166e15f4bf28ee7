"""Frame ``i`` is the ffmpeg command line's ``i``-th frame, on files made the way real data sets are.

The reference is ``ffmpeg -i F -fps_mode passthrough -pix_fmt rgb24 -f rawvideo -``: its ``i``-th
output frame is frame ``i``. The corpus (``benchmarks/decoder_corpus.py``, on pytest's path): OpenCV's
sample videos (Debian's ``opencv-doc``), which ship the problems public data sets have, files the
ffmpeg command line makes to show one problem each, and AV1 and VP9 as video sites serve them. Every
requested frame (first, last, single, sorted, unsorted, repeated, random sets) and, for every file,
every frame in order is compared with the reference.
"""

import zlib
from pathlib import Path

import av
import numpy as np
import pytest

from decoder_corpus import CORPUS, DAMAGED, EDIT_LIST, TOLERANCE, Corpus, CorpusUnavailable, frame_difference
from vast.cli.main import main
from vast.data.decoding import FRAME_INDEX_CACHE, PyAVDecoder, check_video
from vast.data.decoding import packets as decoding_packets


class SkippingCorpus(Corpus):
    """The corpus, with a file that cannot be made here (no ffmpeg, no opencv-doc) skipping the test,
    or failing it where the corpus is required (``missing_tool``)."""

    def __init__(self, folder: Path, missing_tool) -> None:
        super().__init__(folder)
        self.missing_tool = missing_tool

    def path(self, name: str) -> Path:
        try:
            return super().path(name)
        except CorpusUnavailable as exc:
            self.missing_tool(str(exc))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, missing_tool) -> Corpus:
    return SkippingCorpus(tmp_path_factory.mktemp("real_world"), missing_tool)


def test_a_missing_reference_skips_here_and_fails_where_the_corpus_is_required(missing_tool, monkeypatch):
    reason = "the ffmpeg command line is the reference: apt-get install ffmpeg"
    monkeypatch.delenv("VAST_REQUIRE_CORPUS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install ffmpeg"):
        missing_tool(reason)
    monkeypatch.setenv("VAST_REQUIRE_CORPUS", "1")  # as .ci/run sets it
    with pytest.raises(pytest.fail.Exception, match="VAST_REQUIRE_CORPUS=1, but the ffmpeg"):
        missing_tool(reason)


def assert_frames_are_ffmpegs(frames: np.ndarray, indices, reference: np.ndarray, name: str) -> None:
    """Each frame equals the reference frame of its index (up to :data:`TOLERANCE`) and is no closer
    to the frames two before or after it (an identical neighbour is as close)."""
    for frame, index in zip(frames, indices):
        index = int(index)
        gap = frame_difference(frame, reference[index])
        assert gap <= TOLERANCE, f"{name} frame {index}: mean difference {gap:.3f} from ffmpeg's"
        for other in range(max(index - 2, 0), min(index + 3, len(reference))):
            closer = frame_difference(frame, reference[other])
            assert closer >= gap, f"{name}: asked for frame {index}, got ffmpeg's frame {other}"


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
    with PyAVDecoder(path) as video:
        assert video.num_frames == len(reference)
        for wanted in requests(len(reference)):
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)
    for wanted in requests(len(reference))[:5]:  # each in a decoder of its own, as a data set opens them
        with PyAVDecoder(path) as video:
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)


def random_requests(count: int, rng: np.random.Generator, draws: int = 2) -> list[list[int]]:
    """Random index sets for a file of ``count`` frames, ``draws`` of each kind: one frame alone, a
    sorted sparse set, an unsorted one, one with repeats, a dense clip (consecutive frames) and a TSN
    clip (one frame in each of 8 equal segments)."""
    sets = []
    for _ in range(draws):
        size = int(rng.integers(2, 9))
        sparse = rng.choice(count, min(size, count), replace=False)
        start, length = int(rng.integers(count)), int(rng.integers(2, 17))
        edges = np.linspace(0, count, 9)
        sets += [
            [int(rng.integers(count))],
            sorted(sparse.tolist()),
            sparse.tolist(),
            rng.choice(sparse, size + 3).tolist(),
            list(range(start, min(start + length, count))),
            [int(rng.integers(lo, max(hi, lo + 1))) for lo, hi in zip(edges[:-1].astype(int), edges[1:].astype(int))],
        ]
    return sets


@pytest.mark.parametrize("name", CORPUS)
def test_random_requests_are_ffmpegs(corpus, name):
    """Random index sets, each in a decoder of its own (as a data set opens them) and all in one."""
    path, reference = corpus.path(name), corpus.reference(name)
    seed = zlib.crc32(name.encode())  # the same draws at every run: a failure can be repeated
    sets = random_requests(len(reference), np.random.default_rng(seed))
    for wanted in sets:
        with PyAVDecoder(path) as video:
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, f"{name} {wanted}")
    with PyAVDecoder(path) as video:
        for wanted in sets:
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, f"{name} {wanted}")


@pytest.mark.slow
@pytest.mark.parametrize("name", CORPUS)
def test_every_frame_in_order_is_ffmpegs(corpus, name):
    path, reference = corpus.path(name), corpus.reference(name)
    with PyAVDecoder(path) as video:
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


@pytest.mark.parametrize("name", [DAMAGED, EDIT_LIST, "h264.avi", "h264.ts"])
def test_a_seek_in_a_file_indexed_by_decoding_starts_at_the_keyframe_asked_for(corpus, name):
    """MP4 is sought by pts, AVI and MPEG-TS by dts: a frame just after the last keyframe is decoded
    from that keyframe, not from the one before it (or the start)."""
    path, reference = corpus.path(name), corpus.reference(name)
    with PyAVDecoder(path) as video:
        assert video._index.by_decoding
        keyframes = video._index.keyframes
        assert len(keyframes) > 1, "the file needs a keyframe past the first"
        wanted = [int(keyframes[-1]) + 1]
        assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, name)
        gap = int(keyframes[-1] - keyframes[-2])
        assert video.num_decoded < min(gap, 20), (video.num_decoded, keyframes)


@pytest.mark.parametrize("name", ["h264.avi", "xvid_packed.avi"])
@pytest.mark.parametrize("kept", ["in memory", "on disk"])
def test_frames_read_through_a_kept_index_are_ffmpegs(corpus, name, kept, tmp_path, monkeypatch):
    path, reference = corpus.path(name), corpus.reference(name)
    builds = []
    decode_index = PyAVDecoder._decode_index
    monkeypatch.setattr(PyAVDecoder, "_decode_index", lambda self: builds.append(1) or decode_index(self))
    monkeypatch.setenv("VAST_CACHE_DIR", str(tmp_path))
    FRAME_INDEX_CACHE.clear()
    PyAVDecoder(path).close()  # builds the index and keeps it
    for wanted in requests(len(reference)):
        if kept == "on disk":
            FRAME_INDEX_CACHE.clear()  # as in a new process
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


def test_a_damaged_packet_is_found_on_opening(corpus):
    path, reference = corpus.path(DAMAGED), corpus.reference(DAMAGED)
    assert len(reference) == 89  # of 90 packets: the decoder rejects the P slice marked IDR
    with PyAVDecoder(path) as video:
        assert video.num_frames == 89 and video._index.by_decoding
        wanted = [45, 50, 88]  # past the damaged packet, without decoding it
        assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, DAMAGED)


def test_damage_first_seen_while_decoding_renumbers_the_frames_as_ffmpeg(corpus, monkeypatch):
    """Damage that only decoding shows (the opening check passes it): once a request decodes the
    packet, the file is indexed by decoding and frames are numbered as ffmpeg's from then on."""
    demux_index = decoding_packets._demux_index
    monkeypatch.setattr(
        decoding_packets, "_demux_index", lambda *args: [p._replace(damaged=False) for p in demux_index(*args)]
    )
    path, reference = corpus.path(DAMAGED), corpus.reference(DAMAGED)
    monkeypatch.setenv("VAST_CACHE_DIR", "")  # no index kept from an earlier test
    FRAME_INDEX_CACHE.clear()
    with PyAVDecoder(path) as video:
        assert video.num_frames == 90  # its timestamps count the damaged packet
        wanted = [35, 45, 50]  # decodes packet 40: the file is then indexed by decoding
        assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, DAMAGED)
        assert video.num_frames == 89
        for wanted in requests(89):
            assert_frames_are_ffmpegs(video.get_frames(wanted), wanted, reference, DAMAGED)
    FRAME_INDEX_CACHE.clear()


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
