"""Decoded frames as arrays: RGB conversion, and the display rotation phones record."""

from __future__ import annotations

import math

import av
import av.bitstream
import numpy as np
from av.video.reformatter import VideoReformatter


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
