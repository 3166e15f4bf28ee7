"""Video decoding: read only the frames a clip sampler asks for.

Two backends behind one ABC, :class:`VideoDecoder`:

- :class:`PyAVDecoder` reads any container FFmpeg reads (MP4, WebM, AVI, ...). Frame ``i`` is the
  ``i``-th frame FFmpeg's decoder outputs, as the ``ffmpeg`` command line numbers them. On opening
  it demuxes the video stream once, without decoding, to count the frames and find the keyframes
  (so the frame count never depends on the container header, which WebM leaves empty and truncated
  files get wrong); a file whose container does not store every frame's pts (AVI) or whose pts do
  not give the output order is decoded once instead, and that index is kept in memory and on disk
  (:mod:`vast.data.frame_index`), so the next opening, in any process, reads it.
  :meth:`~VideoDecoder.get_frames` then seeks to the keyframe at or before each run of wanted frames
  and decodes forward from there, never the whole video.
- :class:`FrameFolderDecoder` reads a folder of images (``img_00001.jpg``, ...).
- :class:`ImageDecoder` reads one image file (``.jpg``, ``.png``, ...) as a one-frame video, so image
  data sets (ImageNet) go through the same sampler, transforms and collate as videos.

:func:`open_video` picks the backend; :func:`check_video` decodes a whole file and names what is
wrong with it (the categories of :data:`BROKEN_CATEGORIES`, or the warning ``damaged``). Images are decoded by
:func:`read_image` (torchvision's decoders: faster than PIL, measured in ``docs/data.md``).

Rotated videos (phone recordings store portrait video as landscape frames plus a display matrix)
come out upright, as the ffmpeg command line shows them: :class:`PyAVDecoder` turns each frame by
:func:`display_rotation` with :func:`upright`, so height and width swap for quarter turns.

Running out of frames: when a file yields fewer frames than its packets promised (a truncated or
damaged file), a wanted frame that could not be decoded is replaced by the last frame decoded before
it (or, when there is none, the first decoded after it), so a clip always has the length asked for.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import av
import av.bitstream
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from tqdm import tqdm

from vast.data.frame_index import FRAME_INDEX_CACHE, FrameIndex, FrameIndexCache
from vast.errors import DataError

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".ogv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")  # matched in any case: ImageNet's files are .JPEG

# Why a file cannot be used, as `vast data check` reports it.
MISSING = "missing file"
ZERO_LENGTH = "zero-length"
NOT_A_VIDEO = "not a video"
AUDIO_ONLY = "audio-only"
NO_FRAMES = "no frames"
TRUNCATED = "truncated"
DECODE_ERROR = "decode error"
NOT_AN_IMAGE = "not an image"
BROKEN_CATEGORIES = (MISSING, ZERO_LENGTH, NOT_A_VIDEO, AUDIO_ONLY, NO_FRAMES, TRUNCATED, DECODE_ERROR, NOT_AN_IMAGE)
# A usable file with damage FFmpeg recovers from: `vast data check` warns about it, it is not broken.
DAMAGED = "damaged"
WARNING_CATEGORIES = (DAMAGED,)

# First bytes of the containers we can recognise even when FFmpeg cannot open the file: a file that
# starts like a video container but does not open was cut short (e.g. an MP4 missing its index).
_CONTAINER_MAGIC = (
    (4, b"ftyp"),  # MP4 / MOV / M4V
    (4, b"moov"),
    (4, b"mdat"),
    (4, b"free"),
    (0, b"\x1a\x45\xdf\xa3"),  # Matroska / WebM (EBML)
    (0, b"RIFF"),  # AVI
    (0, b"FLV"),
    (0, b"OggS"),
    (0, b"\x00\x00\x01\xba"),  # MPEG program stream
)

# torchvision's decoder errors start with the C++ source location: "decode_jpeg, /.../decode_jpeg.cpp:171, "
_TORCHVISION_LOCATION = re.compile(r"^[^,]*, \S+:\d+, ")
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG", b"IEND\xaeB`\x82"


class BrokenVideoError(DataError):
    """A video that cannot be opened or decoded; ``category`` is one of :data:`BROKEN_CATEGORIES`."""

    def __init__(self, path: str | os.PathLike, category: str, reason: str) -> None:
        self.path = str(path)
        self.category = category
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {category} ({self.reason})")


class VideoDecoder(ABC):
    """One opened video. Frame ``i`` is the ``i``-th frame in presentation order, from 0 (for a file,
    the ``i``-th frame its decoder outputs).

    Decoders hold open files: open them where they are used (inside a DataLoader worker), close them
    (or use ``with``), and never pickle them.
    """

    path: Path

    @property
    @abstractmethod
    def num_frames(self) -> int:
        """Number of frames, counted from the file itself (> 0)."""

    @property
    @abstractmethod
    def fps(self) -> float:
        """Frames per second (0.0 when the file does not say)."""

    @property
    def frame_times(self) -> np.ndarray:
        """Each frame's presentation time in seconds, float64 ``(num_frames,)``, non-decreasing, the
        first frame at 0. Here evenly spaced at ``fps`` (30 when it is unknown); a file's own
        timestamps where it has them (:class:`PyAVDecoder`)."""
        return even_times(self.num_frames, self.fps)

    @abstractmethod
    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        """Decode the sorted, unique, in-range frame indices ``wanted``; return what could be decoded."""

    def get_frames(self, indices: Sequence[int] | np.ndarray, *, as_tensor: bool = False) -> np.ndarray:
        """Frames at ``indices`` (any order, repeats allowed) as uint8 ``(T, H, W, 3)`` RGB.

        Returns a numpy array, or a torch tensor sharing its memory when ``as_tensor`` is true.
        Indices past the last decodable frame are clamped to it (see the module docstring).
        """
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if index.size == 0:
            raise ValueError("get_frames needs at least one frame index")
        if index.min() < 0:
            raise ValueError(f"frame indices must be >= 0, got {int(index.min())}")
        index = np.minimum(index, self.num_frames - 1)
        decoded = self._decode(np.unique(index))
        if not decoded:
            raise BrokenVideoError(self.path, NO_FRAMES, "no frame could be decoded")
        frames = _fill_missing(index, decoded)
        return torch.from_numpy(frames) if as_tensor else frames

    def close(self) -> None:  # noqa: B027 - backends without open resources need not override it
        """Release the file."""

    def __enter__(self) -> VideoDecoder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        raise TypeError(
            f"{type(self).__name__} holds an open file and cannot be pickled; open the video inside "
            "the worker that reads it (VideoDataset does this per item)"
        )


def even_times(num_frames: int, fps: float) -> np.ndarray:
    """Times of ``num_frames`` frames at ``fps`` (30 when 0: a video that does not say its rate still
    has its frames evenly spaced, and the clip samplers measure time in mean frame durations)."""
    return np.arange(num_frames, dtype=np.float64) / (fps if fps > 0 else 30.0)


def _fill_missing(index: np.ndarray, decoded: dict[int, np.ndarray]) -> np.ndarray:
    """Stack the frames at ``index``; a frame that was not decoded takes the nearest earlier one."""
    have = np.array(sorted(decoded))
    # Position of the last decoded index <= each wanted index; none earlier -> the first decoded.
    pos = np.searchsorted(have, index, side="right") - 1
    chosen = have[np.maximum(pos, 0)]
    if len(have) < len(np.unique(index)):
        logger.debug("clamped %d wanted frames to decoded neighbours", int(np.sum(chosen != index)))
    return np.stack([decoded[int(i)] for i in chosen])


class PyAVDecoder(VideoDecoder):
    """Decoder for video files through PyAV (FFmpeg).

    Args:
        path: the video file.
        threads: decoder threads. 1 (default) decodes on the calling thread, the right choice inside
            DataLoader workers; N > 1 uses FFmpeg frame and slice threading with N threads; 0 lets
            FFmpeg pick one per core.
        exact: index every file by decoding it once, also one whose timestamps are trusted: frame
            ``i`` is then the command line's ``i``-th frame even in an MP4 with damage that only
            decoding shows, before a request has decoded it (see below). Slower to open.

    Frame ``i`` is the ``i``-th frame that FFmpeg's decoder outputs (as the ``ffmpeg`` command line
    with ``-fps_mode passthrough`` numbers them). Files whose container stores every frame's
    presentation timestamp (MP4, MOV, Matroska, WebM) are indexed from their packets alone; any
    other file (AVI, MPEG, ...) or one whose timestamps cannot be trusted is decoded once on
    opening to learn which frames the decoder outputs, in which order (see :func:`_trusts_timestamps`).
    A packet the decoder rejects on its headers is found on opening (:func:`_demux_index`); one that
    fails only in full decoding shows, when a request meets it, that the timestamps miscount the
    frames: the decoder then indexes the file by decoding it, and frames are numbered as FFmpeg
    outputs them from that request on (before it: ``exact``).

    ``num_decoded`` counts the frames decoded so far (to check that seeking avoids decoding all).
    """

    def __init__(self, path: str | os.PathLike, *, threads: int = 1, exact: bool = False) -> None:
        self.path = Path(path)
        self.threads = threads
        self.exact = exact
        self.num_decoded = 0
        self._damaged = False  # a packet did not decode
        self._reformatter = VideoReformatter()  # keeps its conversion context from frame to frame
        self._container = _open_container(self.path)
        self._at_start = True  # nothing read from the container yet: decoding from the start needs no reopening
        self._skipped = False  # the request being decoded told the decoder to drop a picture
        try:
            self._stream = _video_stream(self._container, self.path)
            self._configure_threads(self._stream)
            # May unwanted pictures be dropped undecoded: not with a decoder that cannot be told per
            # packet; else until opening or decoding shows that it does not do what it is told.
            self._skipping = _skips_per_packet(self._stream.codec_context)
            self._use_index(self._build_index())
        except BaseException:
            self._container.close()
            raise
        self._wanted_pts: set[int] = set()
        # Older PyAV exposes the rotation on the stream only; newer PyAV on frames only.
        self._stream_rotation = display_rotation(self._stream)

    @property
    def num_frames(self) -> int:
        return len(self._pts)

    @property
    def fps(self) -> float:
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        if rate:
            return float(rate)
        duration = int(self._pts.max() - self._pts.min()) if self._index.named else 0
        if duration > 0 and self._stream.time_base:
            return float((len(self._pts) - 1) / (duration * self._stream.time_base))
        return 0.0

    @property
    def frame_times(self) -> np.ndarray:
        """From the index's timestamps when they name each frame in presentation order (the index
        holds them already: nothing is decoded); else (an AVI with B-frames, whose stamps are decoding
        times) evenly spaced at ``fps``."""
        stamps, time_base = self._pts, self._stream.time_base
        if self._index.named and time_base and len(stamps) > 1 and np.all(np.diff(stamps) > 0):
            return (stamps - stamps[0]).astype(np.float64) * float(time_base)
        return even_times(self.num_frames, self.fps)

    def close(self) -> None:
        self._container.close()

    def _configure_threads(self, stream: av.VideoStream) -> None:
        codec = stream.codec_context
        if self.threads == 1:
            codec.thread_count = 1
        else:
            codec.thread_type = "AUTO"
            codec.thread_count = max(self.threads, 0)

    def _use_index(self, index: FrameIndex) -> None:
        self._index = index
        self._pts = index.stamps
        self._pts_to_index = {int(p): i for i, p in enumerate(self._pts)} if index.named else {}

    def _build_index(self) -> FrameIndex:
        """The index by decoding kept from an earlier opening (:data:`FRAME_INDEX_CACHE`: the file is
        then neither demuxed nor decoded here); else from the packets when the container stores
        timestamps that can be trusted (found by demuxing); else built by decoding."""
        key = FrameIndexCache.key(self.path, self._stream.index)
        kept = FRAME_INDEX_CACHE.get(key)
        if kept is not None:
            return kept
        if self.exact or not _stores_timestamps(self._container):
            return self._index_by_decoding(key)
        packets = _demux_index(self._container, self._stream, self.path)
        self._at_start = False
        if not packets:
            raise BrokenVideoError(self.path, NO_FRAMES, "the video stream has no frames")
        if any(p.shown for p in packets):
            logger.debug("%s: %s ignores skip_frame, decoding every frame", self.path, self._stream.codec_context.name)
            self._stop_skipping()
        if _trusts_timestamps(self._stream, packets):
            return _index_from_packets(packets)
        logger.debug("%s: the container's timestamps do not say the frame order, decoding once", self.path)
        return self._index_by_decoding(key)

    def _index_by_decoding(self, key: tuple) -> FrameIndex:
        """The file's index by decoding, built and kept in :data:`FRAME_INDEX_CACHE` for the next
        opening (the caller has looked there)."""
        index = self._decode_index()
        FRAME_INDEX_CACHE.put(key, index)
        return index

    def _decode_index(self) -> FrameIndex:
        """Decode the file once, through a container of its own, and name each output frame."""
        with _open_container(self.path) as container:
            stream = container.streams[self._stream.index]
            stream.codec_context.thread_count = 1
            # Which frames come out and in which order does not depend on their pixels.
            stream.codec_context.options = {"skip_idct": "all", "skip_loop_filter": "all"}
            # MP4 and Matroska seek by pts (by dts, earlier by the reordering delay, a seek lands on
            # the keyframe before); AVI and MPEG streams by dts.
            seek_by = _stamp if _stores_timestamps(container) else _decoding_stamp
            key_packets: dict[int | None, int] = {}
            stamps, key_frames = [], []
            for packet in _unpacked(_demux(container, stream, self.path), stream):
                if packet.is_keyframe and packet.size:
                    key_packets[_stamp(packet)] = seek_by(packet)
                for frame in _decode_packet(packet, self.path) or ():
                    stamps.append(_stamp(frame))
                    key_frames.append(frame.key_frame)
        if not stamps:
            raise BrokenVideoError(self.path, NO_FRAMES, "no frame could be decoded")
        return _index_from_frames(stamps, key_frames, key_packets)

    def _keyframe_before(self, index: int) -> int:
        keyframes = self._index.keyframes
        return int(keyframes[np.searchsorted(keyframes, index, side="right") - 1])

    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        out = self._decode_runs(wanted)
        if self._damaged and not self._index.by_decoding:
            logger.debug("%s: a packet does not decode, indexing the file by decoding it", self.path)
            self._use_index(self._index_by_decoding(FrameIndexCache.key(self.path, self._stream.index)))
            wanted = np.unique(np.minimum(wanted, self.num_frames - 1))
            out = self._decode_runs(wanted)
        if self._skipped and not out.keys() >= set(wanted.tolist()):
            # A wanted packet gave no frame while others were dropped: the decoder does not drop one
            # picture per packet told to (a truncated file lands here too, once: decoding every
            # frame is right for it as well).
            logger.debug("%s: skipping pictures lost a wanted frame, decoding every frame", self.path)
            self._stop_skipping()
            out = self._decode_runs(wanted)
        return out

    def _stop_skipping(self) -> None:
        """Decode every frame from now on, with a fresh decoder: one that was told to skip may keep
        the setting whatever it is told next (see :func:`_skips_per_packet`)."""
        self._skipping = False
        self._reopen()

    def _decode_runs(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        self._skipped = False
        wanted_set = {int(i) for i in wanted}
        self._wanted_pts = {int(self._pts[i]) for i in wanted_set}
        out: dict[int, np.ndarray] = {}
        frames: Iterator[tuple[int, av.VideoFrame]] | None = None
        position, last = -1, None  # index and frame last decoded
        for target in wanted.tolist():
            if target in out:
                continue
            key = self._keyframe_before(target)
            if frames is None or key > position:
                # Seeking beats decoding forward when the keyframe lies past where we are.
                frames = self._frames_from(key, target)
            for index, frame in frames:
                position, last = index, frame
                if index in wanted_set and index not in out:
                    out[index] = self._rgb(frame)
                if index >= target:
                    break
            else:
                # The file ran out of frames: keep the last one decoded, which the caller puts in
                # place of the wanted frames after it.
                if last is not None and position not in out:
                    out[position] = self._rgb(last)
                break
        return out

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """``frame`` as upright RGB, as the ffmpeg command line shows it."""
        rotation = display_rotation(frame) or self._stream_rotation
        return upright(to_rgb(self._reformatter, frame, self.threads), rotation)

    def _frames_from(self, key: int, target: int) -> Iterator[tuple[int, av.VideoFrame]]:
        """Seek to keyframe ``key`` and yield ``(index, frame)`` from there on.

        The seek must land on that keyframe or one before it (the first frame decoded from ``key``
        on is ``key`` itself). If it fails, lands past it (a container with an imprecise index, a
        keyframe flag on a placeholder packet) or is followed by no frame at all, decode from the
        start of the file instead: slower, still right.
        """
        if self._index.by_decoding and (key == 0 or not self._index.named):
            yield from self._frames_after(self._restart(), -1)  # where counting frames is right
            return
        try:
            self._seek(int(self._index.seek_stamps[np.searchsorted(self._index.keyframes, key)]))
        except av.FFmpegError as exc:
            logger.debug("%s: seek failed (%s), decoding from the start", self.path, exc)
            yield from self._frames_after(self._restart(), -1)
            return
        landed = False
        for index, frame in self._frames_after(self._container, key - 1):
            if not landed and index != key:
                break
            landed = True
            yield index, frame
        if not landed:
            logger.debug("%s: seek to frame %d missed, decoding from the start", self.path, key)
            yield from self._frames_after(self._restart(), -1)

    def _seek(self, pts: int) -> None:
        self._at_start = False
        self._container.seek(pts, stream=self._stream, backward=True, any_frame=False)

    def _restart(self) -> av.container.InputContainer:
        """The container at the start of the file, with a fresh decoder (the one opened with the
        decoder while nothing has been read from it: an AVI whose index is kept is never demuxed
        on opening)."""
        if not self._at_start:
            self._reopen()
        self._at_start = False
        return self._container

    def _reopen(self) -> None:
        """Open the file again: the container at its start, with a fresh decoder."""
        self._container.close()
        self._container = _open_container(self.path)
        self._stream = _video_stream(self._container, self.path)
        self._configure_threads(self._stream)
        self._at_start = True

    def _frames_after(self, container: av.container.InputContainer, after: int) -> Iterator:
        """Decode forward, yielding ``(index, frame)`` for frames with index > ``after``.

        A frame is recognised by its timestamp; frames without a known one are counted (which is
        right from the start of the file). Packets FFmpeg cannot decode are passed over, as the
        ``ffmpeg`` command line does. Non-reference frames that are not wanted are dropped by the
        decoder without decoding them: no other frame needs them (with B-frames, often half the
        frames between sparse TSN picks). See :meth:`_may_skip` for when.
        """
        codec = self._stream.codec_context
        may_skip = self._may_skip()
        packets = _demux(container, self._stream, self.path)
        if self._index.by_decoding:  # as the index pass saw them, so that both number frames alike
            packets = _unpacked(packets, self._stream)
        last = after
        for packet in packets:
            if may_skip:
                keep = packet.pts is None or packet.pts in self._wanted_pts
                codec.skip_frame = "DEFAULT" if keep else "NONREF"
                self._skipped |= not keep
            frames = _decode_packet(packet, self.path)
            if frames is None:
                self._damaged = True
                continue
            for frame in frames:
                self.num_decoded += 1
                if self._skipped and _stamp(frame) not in self._pts_to_index:
                    # Counting frames on from the last is wrong once some were dropped: stop here,
                    # and the wanted frames missing make the request decode every frame.
                    return
                index = self._index_of(frame, last)
                if index is None or index <= after:
                    continue  # leading frames of an open GOP, before the keyframe we seeked to
                last = index
                yield index, frame

    def _may_skip(self) -> bool:
        """Whether a packet whose timestamp is not wanted may have its non-reference picture
        dropped undecoded.

        Right when each packet codes one picture and the frame decoded from it is named by that
        packet's timestamp, as FFmpeg's decoders name frames: the fast path's files, and files
        indexed by decoding once :func:`_unpacked` has moved DivX/Xvid packed B-frames (the one
        exception: a picture coded in one packet but decoded under the next one's timestamp) into
        packets of their own. Not when frames are counted rather than named (no timestamp to tell a
        wanted packet by), nor with frame threading, where the setting would reach packets already
        queued, nor with a decoder that cannot be told per packet (:func:`_skips_per_packet`: libdav1d,
        AV1's decoder), nor once the decoder was seen not to do what it is told: it output a picture
        while told to skip all on opening (:func:`_demux_index`), or a wanted frame did not come out
        (:meth:`_decode`).
        """
        return self.threads == 1 and self._index.named and self._skipping

    def _index_of(self, frame: av.VideoFrame, last: int) -> int | None:
        """A decoded frame's index, by its timestamp; without a known one, counted on from ``last``
        (right from the start of the file), or ``None`` when the index by decoding names every frame
        and never saw this one."""
        stamp = _stamp(frame)
        index = self._pts_to_index.get(stamp) if stamp is not None else None
        if index is None and not (self._index.by_decoding and self._index.named):
            index = last + 1
        return index


def _stamp(item: av.Packet | av.VideoFrame) -> int | None:
    """The timestamp that names a frame: its pts, or its dts in a container without pts (AVI).

    A decoded frame carries the pts of the packet its picture was coded in, whatever order the
    decoder outputs it in (so a B-frame in an MP4 whose pts equal its dts keeps its packet's).
    """
    return item.pts if item.pts is not None else item.dts


def _decoding_stamp(packet: av.Packet) -> int | None:
    """The timestamp that seeks to a keyframe packet in other containers: its dts (AVI stores no pts;
    FFmpeg seeks MPEG-PS and -TS by decoding time)."""
    return packet.dts if packet.dts is not None else packet.pts


def _demux(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> Iterator[av.Packet]:
    """The stream's packets, up to the end of the file or to where the demuxer cannot read on."""
    try:
        yield from container.demux(stream)
    except av.FFmpegError as exc:
        # A damaged tail: keep the packets read so far, decoding will clamp to them.
        logger.debug("%s: demuxing stopped early: %s", path, exc)


def _unpacked(packets: Iterator[av.Packet], stream: av.VideoStream) -> Iterator[av.Packet]:
    """``packets`` with one picture each. DivX/Xvid AVIs pack a B-frame into the chunk of the P-frame
    before it and leave a tiny N-VOP placeholder chunk after; FFmpeg's decoder keeps the packed
    picture and decodes it under a later packet's timestamp, so dropping a packet's picture by its
    timestamp would drop the wrong one. FFmpeg's ``mpeg4_unpack_bframes`` filter moves each packed
    picture into the packet whose timestamp names it on output: the decoder outputs the same frames
    in the same order. Streams of other codecs, and MPEG-4 without packing, pass unchanged.
    """
    if stream.codec_context.name != "mpeg4":
        yield from packets
        return
    # A filter per pass: after a seek it must not hold a picture from before.
    unpack = av.bitstream.BitStreamFilterContext("mpeg4_unpack_bframes", in_stream=stream)
    for packet in packets:
        # The empty packet at the end flushes the decoder: drain the filter before it.
        pictures = unpack.filter(packet) if packet.size else [*unpack.filter(None), packet]
        for picture in pictures:
            picture.stream = stream  # the filter's packets belong to no stream; decode() needs one
            yield picture


def _decode_packet(packet: av.Packet, path: Path) -> list[av.VideoFrame] | None:
    """The frames decoding ``packet`` gives; ``None`` when FFmpeg rejects the packet (the decoder
    goes on with the next, as the command line does)."""
    try:
        return packet.decode()
    except av.FFmpegError as exc:
        logger.debug("%s: a packet at %s does not decode: %s", path, packet.dts, exc)
        return None


class _PacketInfo(NamedTuple):
    pts: int | None
    dts: int | None
    key: bool
    damaged: bool  # flagged corrupt, to be discarded (an MP4 edit list cuts it), or rejected by the decoder
    shown: bool = False  # the decoder output a picture for it though told to skip all: it ignores skip_frame


# FFmpeg's AV_CODEC_CAP_OTHER_THREADS (PyAV's Capabilities.auto_threads): the decoder hands packets
# to a library that decodes in threads of its own.
_OTHER_THREADS = 1 << 15


def _skips_per_packet(codec: av.CodecContext) -> bool:
    """Whether the decoder can be told, packet by packet, to drop pictures (``skip_frame``).

    FFmpeg's own decoders read the setting as they decode each packet. A wrapper of a library that
    decodes in threads of its own (:data:`_OTHER_THREADS`: libdav1d for AV1, libvpx) cannot: libdav1d
    takes the setting the first packet comes with as its mode for the whole stream, seeks included
    (measured on an SVT-AV1 file of 100 frames: ``NONREF`` first, then ``DEFAULT``, outputs 65;
    ``ALL`` first outputs the 3 keyframes and nothing else ever after). Such a decoder is never told
    to skip: skipped frames would no longer map one to one onto the packets told to drop them.
    """
    return not codec.codec.capabilities & _OTHER_THREADS


def _demux_index(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> list[_PacketInfo]:
    """Timestamps and flags of every packet that carries data, without reconstructing a picture.

    Each packet also goes through the decoder with every picture skipped (``skip_frame=ALL``: the
    decoder parses headers only, a few percent on top of demuxing). A packet the decoder rejects
    even so is one FFmpeg drops, so the timestamps would count a frame that never comes out (an
    H.264 P slice in an IDR unit): it is marked damaged, and the file is indexed by decoding. A
    picture that comes out even so shows a decoder that ignores the setting (``shown``; Cinepak
    does). A decoder that cannot be told per packet (:func:`_skips_per_packet`) is not told at all:
    its packets are demuxed only (a damaged one shows when a request decodes it).
    """
    codec = stream.codec_context
    check = _skips_per_packet(codec)
    if check:
        codec.skip_frame = "ALL"
    infos: list[_PacketInfo] = []
    try:
        for packet in _demux(container, stream, path):
            frames = _decode_packet(packet, path) if check else []
            rejected = frames is None
            if packet.size:  # flush packets at the end of the stream carry no frame
                damaged = packet.is_corrupt or packet.is_discard or rejected
                infos.append(_PacketInfo(packet.pts, packet.dts, packet.is_keyframe, damaged, bool(frames)))
            elif infos and (rejected or frames):  # a threaded decoder reports when it drains
                last = infos[-1]
                infos[-1] = last._replace(damaged=last.damaged or rejected, shown=last.shown or bool(frames))
    finally:
        if check:
            codec.skip_frame = "DEFAULT"  # the next seek flushes what this pass left in the decoder
    return infos


# Containers that store each frame's presentation timestamp (AVI stores none; MPEG streams not all).
_TIMESTAMPED_FORMATS = {"mov", "mp4", "matroska", "webm"}


def _stores_timestamps(container: av.container.InputContainer) -> bool:
    """Whether the container stores each frame's presentation timestamp (MP4/MOV, Matroska/WebM)."""
    return bool(_TIMESTAMPED_FORMATS & set(container.format.name.split(",")))


def _trusts_timestamps(stream: av.VideoStream, packets: list[_PacketInfo]) -> bool:
    """Whether sorting the packets' pts gives the frames in the decoder's output order, one each
    (in a container that stores them, :func:`_stores_timestamps`).

    True when the packets all carry distinct pts, none is flagged corrupt, discarded or rejected,
    and their pts differ from their dts somewhere when the codec reorders frames (an MP4 without
    composition offsets, pts equal to dts, stores B-frames in decoding order: ``box.mp4``).
    """
    pts = [p.pts for p in packets]
    if None in pts or len(set(pts)) < len(pts) or any(p.damaged for p in packets):
        return False
    reorders = stream.codec_context.has_b_frames > 0
    return not reorders or any(p.pts != p.dts for p in packets)


def _index_from_packets(packets: list[_PacketInfo]) -> FrameIndex:
    """Frames in pts order, one per packet; seek to a keyframe by its pts."""
    order = np.argsort([p.pts for p in packets], kind="stable")
    stamps = np.asarray([p.pts for p in packets], dtype=np.int64)[order]
    keyframes = np.flatnonzero(np.asarray([p.key for p in packets], dtype=bool)[order])
    if keyframes.size == 0 or keyframes[0] != 0:
        keyframes = np.concatenate([[0], keyframes])  # decoding from the start always works
    return FrameIndex(stamps, keyframes, stamps[keyframes], by_decoding=False, named=True)


def _index_from_frames(
    stamps: list[int | None], key_frames: list[bool], key_packets: dict[int | None, int]
) -> FrameIndex:
    """Frames in the order the decoder output them. Decoding may start after a seek at a key frame
    named by a keyframe packet's stamp (not at a keyframe-flagged placeholder packet, which codes
    no picture); when stamps are missing or repeat, only at the start, counting frames from there."""
    named = None not in stamps and len(set(stamps)) == len(stamps)
    if not named:
        start = np.zeros(1, dtype=np.int64)
        return FrameIndex(np.arange(len(stamps), dtype=np.int64), start, start, True, False)
    entries = [i for i, (s, key) in enumerate(zip(stamps, key_frames)) if key and s in key_packets]
    keyframes = np.asarray(sorted({0, *entries}), dtype=np.int64)
    seek_stamps = np.asarray([key_packets.get(stamps[i], stamps[i]) for i in keyframes], dtype=np.int64)
    return FrameIndex(np.asarray(stamps, dtype=np.int64), keyframes, seek_stamps, True, True)


def to_rgb(reformatter: VideoReformatter, frame: av.VideoFrame, threads: int = 1) -> np.ndarray:
    """A decoded frame as uint8 RGB ``(H, W, 3)``.

    ``frame.to_ndarray(format="rgb24")`` builds a new conversion context for every frame and
    converts on one thread per core; a reused reformatter on ``threads`` threads is many times
    faster on small frames (0.005 ms instead of 0.3 ms for 64x64, measured).
    """
    try:
        return reformatter.reformat(frame, format="rgb24", threads=threads).to_ndarray()
    except TypeError:  # PyAV before `threads` existed: it converts on one thread anyway
        return reformatter.reformat(frame, format="rgb24").to_ndarray()


def display_rotation(frame_or_stream: av.VideoFrame | av.VideoStream) -> int:
    """Degrees counter-clockwise (0, 90, 180 or 270) to turn a decoded frame by to show it upright,
    as the ffmpeg command line does (it auto-rotates by the display matrix); 0 when there is none.

    The sign is the display matrix's (FFmpeg's ``av_display_rotation_get``, ffprobe's "rotation"):
    a phone held upright writes -90, which is 270 here, a clockwise quarter turn, as ffmpeg shows it
    (``transpose=clock``). Read from the frame's display matrix side data (``VideoFrame.rotation``,
    PyAV 14 and later) or from ``VideoStream.side_data`` (PyAV 11.2 to 13, which have no
    ``VideoFrame.rotation``). Newer PyAV does not expose it on streams: a stream gives 0 there, so
    pass a decoded frame. An angle between quarter turns is rounded to the nearest one (ffmpeg would
    rotate by the exact angle and fill the corners; phones write quarter turns).
    """
    angle = getattr(frame_or_stream, "rotation", None)
    if angle is None:
        side_data = getattr(frame_or_stream, "side_data", None)
        angle = side_data.get("DISPLAYMATRIX", 0) if isinstance(side_data, dict) else 0
    if not angle or not math.isfinite(angle):  # the usual case costs two attribute reads
        return 0
    return round(angle / 90) % 4 * 90


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """``rgb`` (H, W, 3) turned ``rotation`` degrees counter-clockwise (see :func:`display_rotation`),
    contiguous; the array itself, uncopied, when ``rotation`` is 0. 90 and 270 swap H and W."""
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation}; see display_rotation")
    turns = rotation // 90 % 4
    if turns == 0:
        return rgb
    # Copy: np.rot90 is a strided view, and torch and the transforms want contiguous frames.
    return np.ascontiguousarray(np.rot90(rgb, turns))


class FrameFolderDecoder(VideoDecoder):
    """Decoder for a folder of frames named ``{prefix}{number}{ext}`` (``img_00001.jpg``, ...).

    Frames are ordered by their number (which need not start at 1 nor be zero-padded); frame 0 is
    the lowest number. ``fps`` is not stored in a folder, so it is given (default 30).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        prefix: str = "img_",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        fps: float = 30.0,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise BrokenVideoError(self.path, MISSING, "no such frame folder")
        pattern = re.compile(
            re.escape(prefix) + r"(\d+)(" + "|".join(re.escape(e) for e in extensions) + r")$", re.IGNORECASE
        )
        numbered = []
        for entry in os.scandir(self.path):
            match = pattern.match(entry.name)
            if match:
                numbered.append((int(match.group(1)), entry.path))
        if not numbered:
            raise BrokenVideoError(self.path, NO_FRAMES, f"no files named {prefix}<number>{extensions[0]}")
        self._files = [file for _, file in sorted(numbered)]
        self._fps = float(fps)

    @property
    def num_frames(self) -> int:
        return len(self._files)

    @property
    def fps(self) -> float:
        return self._fps

    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        return {index: read_image(self._files[index]) for index in wanted.tolist()}


class ImageDecoder(VideoDecoder):
    """One image file as a one-frame video: ``num_frames`` is 1, ``fps`` 0.0.

    Any clip sampler asks for frame 0 only (a clip of ``T`` frames repeats the image ``T`` times), so
    ``get_frames`` gives uint8 ``(T, H, W, 3)`` like a video's. A missing or empty file fails here, when
    opened; a file that does not decode fails in ``get_frames``, both with :class:`BrokenVideoError`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        _check_size(self.path)

    @property
    def num_frames(self) -> int:
        return 1

    @property
    def fps(self) -> float:
        return 0.0

    def _decode(self, wanted: np.ndarray) -> dict[int, np.ndarray]:
        return {0: read_image(self.path)}


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like an image (an extension of :data:`IMAGE_EXTENSIONS`, any case)."""
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``: grey and CMYK converted, alpha dropped, 16-bit
    samples shifted to 8 bits, the first frame of an animation; the format is read from the file's
    bytes, not its name. EXIF orientation is not applied (as torchvision's and timm's ImageNet loaders).

    Raises :class:`BrokenVideoError` with the category (missing file, zero-length, truncated,
    not an image, decode error) and torchvision's reason.
    """
    from torchvision.io import ImageReadMode, decode_image, read_file

    path = Path(path)
    _check_size(path)
    try:
        image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError) as exc:
        reason = _TORCHVISION_LOCATION.sub("", str(exc).strip())
        raise BrokenVideoError(path, _image_problem(path, reason), reason) from None
    if image.ndim == 4:  # an animated image: its first frame
        image = image[0]
    if image.dtype != torch.uint8:  # 16-bit PNG: keep the high byte
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    return image.permute(1, 2, 0).numpy()


def _image_problem(path: Path, reason: str) -> str:
    """The category of an image torchvision could not decode."""
    if reason.startswith("Unsupported image file"):
        return NOT_AN_IMAGE
    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(path.stat().st_size - 8, 0))
        tail = handle.read()
    cut_jpeg = head.startswith(_JPEG_START) and not tail.endswith(_JPEG_END)
    cut_png = head.startswith(_PNG_START) and not tail.endswith(_PNG_END)
    return TRUNCATED if "truncated" in reason or cut_jpeg or cut_png else DECODE_ERROR


def open_video(path: str | os.PathLike, *, threads: int = 1, fps: float = 30.0) -> VideoDecoder:
    """Open ``path``: a folder as a :class:`FrameFolderDecoder` (at ``fps``), an image file (by its
    extension, :data:`IMAGE_EXTENSIONS`) as a one-frame :class:`ImageDecoder`, any other file with PyAV.

    Raises :class:`BrokenVideoError` (a :class:`~vast.errors.DataError`) naming what is wrong.
    """
    path = Path(path)
    if path.is_dir():
        return FrameFolderDecoder(path, fps=fps)
    if is_image_file(path):
        return ImageDecoder(path)
    return PyAVDecoder(path, threads=threads)


def _check_size(path: Path) -> None:
    """Raise :class:`BrokenVideoError` if ``path`` is missing, unreadable or empty."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise BrokenVideoError(path, MISSING, "no such file") from None
    except OSError as exc:
        raise BrokenVideoError(path, MISSING, exc.strerror or str(exc)) from None
    if size == 0:
        raise BrokenVideoError(path, ZERO_LENGTH, "the file is empty")


def _open_container(path: Path) -> av.container.InputContainer:
    _check_size(path)
    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        category = TRUNCATED if _looks_like_container(path) else NOT_A_VIDEO
        raise BrokenVideoError(path, category, _ffmpeg_reason(exc)) from None


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    # Cover art is stored as a one-frame video stream: prefer a stream that is real video.
    moving = [s for s in container.streams.video if not _is_picture(s)]
    if moving or container.streams.video:
        return (moving or list(container.streams.video))[0]
    if container.streams.audio:
        raise BrokenVideoError(path, AUDIO_ONLY, "the file has audio but no video stream")
    raise BrokenVideoError(path, NOT_A_VIDEO, "the file has no video stream")


def _is_picture(stream: av.VideoStream) -> bool:
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except AttributeError:  # PyAV without dispositions
        return False


def _looks_like_container(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(12)
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _CONTAINER_MAGIC)


def _ffmpeg_reason(exc: BaseException) -> str:
    # FFmpeg messages end with the file name, which the report already shows.
    return getattr(exc, "strerror", None) or str(exc)


class VideoProblem(NamedTuple):
    """What :func:`check_video` found wrong with one file."""

    path: str
    category: str
    reason: str

    @property
    def broken(self) -> bool:
        """Whether the file cannot be used (a warning, :data:`WARNING_CATEGORIES`, is not)."""
        return self.category in BROKEN_CATEGORIES


def check_video(path: str | os.PathLike, *, index: bool = False) -> VideoProblem | None:
    """Decode every frame of ``path``; ``None`` when it is a sound video, else what is wrong.

    Broken (:data:`BROKEN_CATEGORIES`) only when FFmpeg cannot decode its frames: none decodes, or
    the file ends before its header's duration (``truncated``). A file where some packets give no
    frame but FFmpeg decodes the others is ``damaged``, a warning (``problem.broken`` is false).
    ``index``: also index a usable video file the way :class:`PyAVDecoder` does, so a file indexed
    by decoding (an AVI) has its index kept (:mod:`vast.data.frame_index`) before training opens it.
    """
    path = Path(path)
    try:
        if path.is_dir() or is_image_file(path):
            with open_video(path) as frames:
                frames.get_frames(range(frames.num_frames))
            return None
        container = _open_container(path)
    except BrokenVideoError as exc:
        return VideoProblem(str(path), exc.category, exc.reason)
    with container:
        try:
            stream = _video_stream(container, path)
        except BrokenVideoError as exc:
            return VideoProblem(str(path), exc.category, exc.reason)
        problem = _decode_all(container, stream, path)
    if index and (problem is None or not problem.broken):
        with contextlib.suppress(BrokenVideoError):  # what the check found stands
            PyAVDecoder(path).close()
    return problem


def _decode_all(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> VideoProblem | None:
    """Decode every frame as the ``ffmpeg`` command line does, passing over packets that do not
    decode; broken only when no frame decodes or the file ends before its header says it does."""
    stream.codec_context.thread_count = 1
    reformatter = VideoReformatter()
    decoded, packets = 0, 0
    span = _Span()
    try:
        for packet in container.demux(stream):
            if packet.size and not packet.is_discard:  # an edit list hides a discarded packet's frame
                packets += 1
                span.add(packet)
            for frame in _decode_packet(packet, path) or ():
                to_rgb(reformatter, frame)
                decoded += 1
    except (av.FFmpegError, ValueError) as exc:  # the demuxer: the file stops in the middle of a packet
        category = TRUNCATED if decoded else DECODE_ERROR
        return VideoProblem(str(path), category, f"after {decoded} frames: {_ffmpeg_reason(exc)}")
    if decoded == 0:
        reason = f"the video stream has no decodable frames ({packets} packets)"
        return VideoProblem(str(path), NO_FRAMES if packets == 0 else DECODE_ERROR, reason)
    cut = _cut_short(container, stream, span)
    if cut:
        return VideoProblem(str(path), TRUNCATED, f"decoded {decoded} frames; {cut}")
    if decoded < packets:
        reason = f"{packets - decoded} of {packets} packets give no frame; FFmpeg decodes the other {decoded}"
        return VideoProblem(str(path), DAMAGED, reason)
    return None


class _Span:
    """The time the packets of a stream cover, in its time base (their timestamps, not their count:
    a drop-frame AVI codes only some of the frames its header counts, ``tree.avi`` 68 of 444)."""

    def __init__(self) -> None:
        self.first: int | None = None
        self.end: int | None = None

    def add(self, packet: av.Packet) -> None:
        stamp = _stamp(packet)
        if stamp is None:
            return
        self.first = stamp if self.first is None else min(self.first, stamp)
        end = stamp + max(packet.duration or 0, 0)
        self.end = end if self.end is None else max(self.end, end)


def _cut_short(container: av.container.InputContainer, stream: av.VideoStream, span: _Span) -> str:
    """Why the packets end before the header's duration (with slack: the container's duration may
    include a slightly longer audio track, and one frame); empty when they do not."""
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration:
        seconds = container.duration / av.time_base
    else:
        return ""
    if span.end is None or not stream.time_base:
        return ""
    covered = float((span.end - span.first) * stream.time_base)
    frame = 1 / float(rate) if rate else 0.0
    if covered < 0.9 * seconds - frame:
        return f"its packets end at {covered:.2f} s, the header's duration is {seconds:.2f} s"
    return ""


def check_videos(
    paths: Sequence[str | os.PathLike], *, workers: int = 1, progress: bool = False, index: bool = False
) -> list[VideoProblem]:
    """:func:`check_video` on every path, with ``workers`` processes; the problems, in input order."""
    found: list[tuple[int, VideoProblem]] = []
    check = functools.partial(_check_numbered, index=index)
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(tqdm(total=len(paths), desc="check", unit="video", disable=not progress))
        if workers <= 1:
            results: Iterator = map(check, enumerate(paths))
        else:
            pool = stack.enter_context(multiprocessing.get_context().Pool(workers))
            results = pool.imap_unordered(check, enumerate(paths), chunksize=8)
        for number, problem in results:
            if problem is not None:
                found.append((number, problem))
            bar.update()
    return [problem for _, problem in sorted(found)]


def _check_numbered(item: tuple[int, str | os.PathLike], index: bool) -> tuple[int, VideoProblem | None]:
    number, path = item
    return number, check_video(path, index=index)
