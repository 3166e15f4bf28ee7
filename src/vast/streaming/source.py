"""Frames of a live or recorded source, one at a time: a video file, a stream piped on stdin (``-``),
or anything FFmpeg opens (an ``rtsp://`` URL, a ``/dev/video0`` camera).

Unlike :class:`vast.data.decoding.PyAVDecoder`, which seeks to the frames a sampler asks for, a source
is read once, front to back, as frames arrive: it never seeks, so a pipe or a camera works as a file does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import av
import numpy as np

from vast.data.decoding import display_rotation, upright
from vast.errors import DataError

# How long to wait for a network source or a camera before giving up (seconds: open, then each read).
OPEN_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 30.0


class SourceError(DataError):
    """A stream source that cannot be opened or has no video."""


@dataclass(frozen=True)
class SourceFrame:
    """One decoded frame: its position among the source's frames, its time and its pixels."""

    index: int  # 0-based, counting every decoded frame
    time: float  # seconds from the first frame (presentation time; index / fps when it has none)
    frame: av.VideoFrame

    @cached_property
    def rgb(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB, upright (a display rotation applied, as the ffmpeg command line shows it)."""
        return upright(self.frame.to_ndarray(format="rgb24"), display_rotation(self.frame))


class FrameSource:
    """Decoded frames of ``spec`` in presentation order; use as a context manager.

    ``spec`` is a file path, ``-`` for stdin (MPEG-TS, Matroska, anything with a probeable format), a URL
    or a V4L2 device. :attr:`frame_count` is the expected number of frames of a file (``None`` for a live
    source), :attr:`fps` its average frame rate when known.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.live = spec == "-" or "://" in spec or spec.startswith("/dev/")
        self._container = _open(spec)
        streams = self._container.streams.video
        if not streams:
            self._container.close()
            raise SourceError(f"{_name(spec)} has no video stream; give a video file, - or a camera/URL")
        self._stream = streams[0]
        self._stream.thread_type = "AUTO"
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps: float | None = float(rate) if rate else None
        self.frame_count: int | None = None if self.live else (self._stream.frames or self._frames_from_duration())

    def _frames_from_duration(self) -> int | None:
        if self._container.duration is None or not self.fps:
            return None
        return round(self._container.duration / av.time_base * self.fps)

    def __iter__(self) -> Iterator[SourceFrame]:
        start: float | None = None
        try:
            for index, frame in enumerate(self._container.decode(self._stream)):
                if frame.time is not None:
                    start = frame.time if start is None else start
                    time = frame.time - start
                else:
                    time = index / (self.fps or 1.0)
                yield SourceFrame(index, time, frame)
        except av.error.FFmpegError as exc:
            raise SourceError(f"reading {_name(self.spec)} failed: {_reason(exc)}") from exc

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open(spec: str) -> av.container.InputContainer:
    what = "give a video file, - for a stream on stdin, an rtsp:// URL or a camera such as /dev/video0"
    if spec != "-" and "://" not in spec and not spec.startswith("/dev/") and not Path(spec).is_file():
        raise SourceError(f"source not found: {spec}; {what}")
    if spec == "-" and sys.stdin.isatty():
        raise SourceError("nothing is piped on stdin: pipe a stream in (ffmpeg -i IN -f mpegts - | vast stream RUN -)")
    try:
        if spec == "-":
            return av.open(sys.stdin.buffer, mode="r")
        if spec.startswith("/dev/video"):
            return av.open(spec, format="v4l2", timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
        return av.open(spec, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S))
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"cannot open {_name(spec)}: {_reason(exc)}; {what}") from exc


def _name(spec: str) -> str:
    return "stdin" if spec == "-" else spec


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
