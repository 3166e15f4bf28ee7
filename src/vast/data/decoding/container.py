"""Opening a file with PyAV: its container, its video stream, and why it does not open."""

from __future__ import annotations

from pathlib import Path

import av
import av.bitstream

from vast.data.decoding.base import AUDIO_ONLY, NOT_A_VIDEO, TRUNCATED, BrokenVideoError, _check_size

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
