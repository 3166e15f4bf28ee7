"""``open_video``: the decoder for a path (a frame folder, an image file, any other file with PyAV)."""

from __future__ import annotations

import os
from pathlib import Path

from vast.data.decoding.base import VideoDecoder
from vast.data.decoding.images import FrameFolderDecoder, ImageDecoder, is_image_file
from vast.data.decoding.pyav import PyAVDecoder


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
