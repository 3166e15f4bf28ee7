"""The real-world decoding corpus: files made the way real data sets are, and ffmpeg's frames of each.

Frame ``i`` of a file is the ``i``-th frame of ``ffmpeg -i F -fps_mode passthrough -pix_fmt rgb24 -f
rawvideo -``. The corpus: OpenCV's sample videos (Debian's ``opencv-doc``), which ship the problems
public data sets have, files the ffmpeg command line makes to show one problem each, and AV1 and
VP9 as video sites serve them now (data sets downloaded today, Kinetics among them, come in good
part as AV1 in WebM, MKV or MP4). Used by ``tests/data/test_decoding_real_world.py`` and
``benchmarks/compare_decoders.py``.

Nothing here runs ffmpeg on import. A file that cannot be had (no ffmpeg, no ``opencv-doc``, an
ffmpeg without libxvid, libsvtav1, libaom-av1 or libvpx-vp9) raises :class:`CorpusUnavailable`,
whose one-line message says what to install; the tests turn it into a skip.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from functools import cache
from pathlib import Path

import av
import numpy as np

from vast.errors import VastError

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
# name -> (frames, ffmpeg output options) for a 64x64, 25 fps test pattern (SVT-AV1's smallest size):
# the AV1 and VP9 encoders video sites use, in the containers they serve. A keyframe every 40 frames
# (100 frames: three keyframes) or every 250 (300 frames: two). libdav1d, FFmpeg's AV1 decoder, and
# libaom's alt-ref frames (coded hidden, shown later by a header-only temporal unit) are what these
# show; `irefresh-type=1` makes SVT-AV1's later keyframes forward keyframes (an open GOP).
_SVT_AV1 = ["-c:v", "libsvtav1", "-preset", "10"]
_AOM_AV1 = ["-c:v", "libaom-av1", "-cpu-used", "8", "-row-mt", "1"]
_IREFRESH = ["-svtav1-params", "irefresh-type=1"]
WEB = {
    "svtav1_g40.mkv": (100, [*_SVT_AV1, "-g", "40"]),  # as the file
    "svtav1_g40_irefresh.webm": (100, [*_SVT_AV1, "-g", "40", *_IREFRESH]),
    "svtav1_g250.mp4": (300, [*_SVT_AV1, "-g", "250"]),
    "svtav1_g250_irefresh.mkv": (300, [*_SVT_AV1, "-g", "250", *_IREFRESH]),
    "aom_g40.webm": (100, [*_AOM_AV1, "-g", "40"]),
    "aom_g40.mp4": (100, [*_AOM_AV1, "-g", "40"]),
    "aom_g250.mkv": (300, [*_AOM_AV1, "-g", "250"]),
    "vp9_frame_parallel.webm": (100, ["-c:v", "libvpx-vp9", "-row-mt", "1", "-frame-parallel", "1", "-g", "40"]),
}
DAMAGED = "damaged.mp4"  # good.mp4 with one P slice's NAL type set to IDR: FFmpeg drops that frame
# good.mp4 copied from 1.3 s: the copy starts at the keyframe before, an edit list discards 3 frames
EDIT_LIST = "edit_list.mp4"

CORPUS = [*PUBLIC, *MADE, DAMAGED, EDIT_LIST, *WEB]
# Decoded by a newer FFmpeg (PyAV's) than the command line's, MS-MPEG4 frames differ in a few pixels
# by 1 (mean 0.001); distinct neighbouring frames differ by 0.025 or more (cup.mp4). A frame whose
# mean absolute difference from the reference exceeds this is another frame.
TOLERANCE = 0.01

NO_FFMPEG = "the ffmpeg command line is the reference: apt-get install ffmpeg"


class CorpusUnavailable(VastError):
    """A corpus file cannot be made here; the message (one line) says what to install."""


class Corpus:
    """The corpus files, made or copied into ``folder`` when first asked for; the reference frames
    of each, decoded by the ffmpeg command line into a raw file read as a memory map.

    Files already in ``folder`` are reused, so a benchmark's ``--folder`` is a cache across runs;
    each is written under a temporary name and renamed, so an interrupted run leaves no half file.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.references: dict[str, np.ndarray] = {}

    def path(self, name: str) -> Path:
        """The file ``name`` of :data:`CORPUS`, made or copied on first use."""
        if name not in CORPUS:
            raise ValueError(f"{name!r} is not a corpus file; choose from {', '.join(CORPUS)}")
        require_ffmpeg()
        path = self.folder / name
        if not path.exists():
            partial = self.folder / f"partial-{name}"  # the extension stays: ffmpeg picks the muxer by it
            self._create(name, partial)
            partial.replace(path)
        return path

    def reference(self, name: str) -> np.ndarray:
        """ffmpeg's frames of ``name`` in its output order, uint8 ``(N, H, W, 3)`` (a memory map)."""
        if name not in self.references:
            self.references[name] = ffmpeg_frames(self.path(name), self.folder / f"{name}.rgb")
        return self.references[name]

    def _create(self, name: str, path: Path) -> None:
        if name in PUBLIC:
            copy_public(name, path)
        elif name == DAMAGED:
            damage_one_slice(self.path("good.mp4"), path)
        elif name == EDIT_LIST:
            cut_with_edit_list(self.path("good.mp4"), path)
        elif name in WEB:
            make_web(name, path)
        else:
            make(name, path)


def require_ffmpeg() -> None:
    """Raise :class:`CorpusUnavailable` unless the ffmpeg command line is on the PATH."""
    if shutil.which("ffmpeg") is None:
        raise CorpusUnavailable(NO_FFMPEG)


def copy_public(name: str, path: Path) -> None:
    """Copy (and gunzip) OpenCV's sample video ``name`` from Debian's ``opencv-doc``."""
    source = OPENCV_DOC / PUBLIC[name][0]
    if not source.exists():
        raise CorpusUnavailable(f"{source} is missing: OpenCV's sample videos come with apt-get install opencv-doc")
    with (gzip.open(source) if source.suffix == ".gz" else open(source, "rb")) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)


def make(name: str, path: Path) -> None:
    """Encode 90 frames of ffmpeg's test pattern with the options :data:`MADE` gives ``name``."""
    if "libxvid" in MADE[name] and "libxvid" not in _ffmpeg_encoders():
        raise CorpusUnavailable("this ffmpeg has no libxvid encoder (it packs B-frames as DivX did)")
    pattern = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=25"]
    _ffmpeg(["-y", *pattern, "-frames:v", "90", *MADE[name], str(path)])


def make_web(name: str, path: Path) -> None:
    """Encode ffmpeg's test pattern as :data:`WEB` says for ``name``."""
    frames, options = WEB[name]
    encoder = options[options.index("-c:v") + 1]
    if encoder not in _ffmpeg_encoders():
        raise CorpusUnavailable(f"this ffmpeg has no {encoder} encoder; Debian's has it: apt-get install ffmpeg")
    pattern = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=25"]
    _ffmpeg(["-y", *pattern, "-frames:v", str(frames), *options, str(path)])


def cut_with_edit_list(good: Path, path: Path) -> None:
    """Stream-copy ``good`` from 1.3 s: the copy starts at the keyframe before, an edit list hides the rest."""
    _ffmpeg(["-y", "-ss", "1.3", "-i", str(good), "-c", "copy", str(path)])


def damage_one_slice(good: Path, damaged: Path, number: int = 40) -> None:
    """Copy ``good`` (H.264 in MP4) with the NAL header of the ``number``-th packet (in decoding order,
    a P slice) turned into an IDR slice's, which FFmpeg rejects ('Invalid inter IDR frame')."""
    data = bytearray(good.read_bytes())
    with av.open(str(good)) as container:
        packets = sorted((p for p in container.demux(video=0) if p.size), key=lambda p: p.dts)
    packet = packets[number]
    header = packet.pos + 4  # after the 4-byte NAL length of MP4's H.264
    if packet.is_keyframe or data[header] & 0x1F != 1:
        raise ValueError(f"{good}: packet {number} is not a non-IDR slice")
    data[header] = 0x65
    damaged.write_bytes(bytes(data))


def ffmpeg_frames(path: Path, raw: Path) -> np.ndarray:
    """Every frame the ffmpeg command line outputs, in its order, as uint8 ``(N, H, W, 3)``, decoded
    into ``raw`` (reused when it is there) and read as a memory map: the longest files are hundreds
    of megabytes of RGB."""
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context
        height, width = codec.height, codec.width
    if not raw.exists():
        require_ffmpeg()
        partial = raw.with_name(f"partial-{raw.name}")
        command = ["-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough", "-pix_fmt", "rgb24"]
        _ffmpeg([*command, "-f", "rawvideo", "-y", str(partial)])
        partial.replace(raw)
    return np.memmap(raw, dtype=np.uint8, mode="r").reshape(-1, height, width, 3)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames (compare with :data:`TOLERANCE`)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _ffmpeg(arguments: list[str]) -> None:
    """Run the ffmpeg command line; its error output becomes the exception's message."""
    result = subprocess.run(["ffmpeg", "-v", "error", *arguments], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"ffmpeg {' '.join(arguments)} failed: {result.stderr.strip()}")


@cache
def _ffmpeg_encoders() -> str:
    return subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
