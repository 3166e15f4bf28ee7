"""``check_video``: decode a whole file as the ffmpeg command line does and name what is wrong."""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import av
import av.bitstream
from av.video.reformatter import VideoReformatter
from tqdm import tqdm

from vast.data.decoding.base import BROKEN_CATEGORIES, DAMAGED, DECODE_ERROR, NO_FRAMES, TRUNCATED, BrokenVideoError
from vast.data.decoding.container import _ffmpeg_reason, _open_container, _video_stream
from vast.data.decoding.frames import to_rgb
from vast.data.decoding.images import is_image_file
from vast.data.decoding.opening import open_video
from vast.data.decoding.packets import _decode_packet, _stamp
from vast.data.decoding.pyav import PyAVDecoder


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
