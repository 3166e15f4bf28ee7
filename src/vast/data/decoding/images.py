"""Frame folders and image files, decoded with torchvision's image decoders."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vast.data.decoding.base import (
    DECODE_ERROR,
    IMAGE_EXTENSIONS,
    MISSING,
    NO_FRAMES,
    NOT_AN_IMAGE,
    TRUNCATED,
    BrokenVideoError,
    VideoDecoder,
    _check_size,
)

# torchvision's decoder errors start with the C++ source location: "decode_jpeg, /.../decode_jpeg.cpp:171, "
_TORCHVISION_LOCATION = re.compile(r"^[^,]*, \S+:\d+, ")
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG", b"IEND\xaeB`\x82"


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
