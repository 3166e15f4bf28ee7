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

Modules: :mod:`~vast.data.decoding.base` (the ABC, the categories and the error),
:mod:`~vast.data.decoding.pyav` (:class:`PyAVDecoder`) with :mod:`~vast.data.decoding.packets`
(demuxing, skipping, frame indexes), :mod:`~vast.data.decoding.container` (opening a file) and
:mod:`~vast.data.decoding.frames` (RGB, rotation); :mod:`~vast.data.decoding.images` (frame folders,
image files); :mod:`~vast.data.decoding.check` (``vast data check``); :mod:`~vast.data.decoding.opening`
(:func:`open_video`). Everything public is importable from ``vast.data.decoding``.
"""

from vast.data.decoding.base import (
    AUDIO_ONLY,
    BROKEN_CATEGORIES,
    DAMAGED,
    DECODE_ERROR,
    IMAGE_EXTENSIONS,
    MISSING,
    NO_FRAMES,
    NOT_A_VIDEO,
    NOT_AN_IMAGE,
    TRUNCATED,
    VIDEO_EXTENSIONS,
    WARNING_CATEGORIES,
    ZERO_LENGTH,
    BrokenVideoError,
    VideoDecoder,
    even_times,
)
from vast.data.decoding.check import VideoProblem, check_video, check_videos
from vast.data.decoding.frames import display_rotation, to_rgb, upright
from vast.data.decoding.images import FrameFolderDecoder, ImageDecoder, is_image_file, read_image
from vast.data.decoding.opening import open_video
from vast.data.decoding.pyav import PyAVDecoder
from vast.data.frame_index import FRAME_INDEX_CACHE, FrameIndex, FrameIndexCache

__all__ = [
    "AUDIO_ONLY", "BROKEN_CATEGORIES", "DAMAGED", "DECODE_ERROR", "FRAME_INDEX_CACHE", "IMAGE_EXTENSIONS",
    "MISSING", "NOT_AN_IMAGE", "NOT_A_VIDEO", "NO_FRAMES", "TRUNCATED", "VIDEO_EXTENSIONS",
    "WARNING_CATEGORIES", "ZERO_LENGTH", "BrokenVideoError", "FrameFolderDecoder", "FrameIndex",
    "FrameIndexCache", "ImageDecoder", "PyAVDecoder", "VideoDecoder", "VideoProblem", "check_video",
    "check_videos", "display_rotation", "even_times", "is_image_file", "open_video", "read_image", "to_rgb",
    "upright",
]  # fmt: skip
