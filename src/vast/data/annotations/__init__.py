"""Annotation files: which videos a data set has, their labels, and the class names.

Every format loads into one :class:`Annotations` (``records`` and ``class_names``), so the engine
can save the class names with a checkpoint. Formats (``fmt``) and how ``load_annotations`` detects
them when ``fmt="auto"``:

- ``list``: ``relative/path.mp4 label_index`` per line; ``#`` comments and blank lines are skipped.
  Class names come from ``classes.txt`` next to the list (one name per line) when it exists,
  otherwise they are ``"0"``, ``"1"``, ... Detected for any file not matched below.
- ``csv``: a CSV file with a header holding ``path`` and ``label`` columns; the label is an index or
  a class name (names are sorted alphabetically unless ``classes.txt`` gives the order).
- ``folder``: a directory with one sub-directory per class (sorted alphabetically -> indices), each
  holding the class's videos (files with a video extension, or frame folders), or the class's images
  (``.jpg .jpeg .png .webp`` in any case, ImageNet's ``train/<class>/<image>.JPEG``), each read as a
  one-frame clip. One data set holds videos or images, not both (a list or CSV file may mix them).
- ``kinetics``: the Kinetics-400 CSV (header ``label,youtube_id,time_start,time_end,split``); the
  video of a row is ``{youtube_id}_{time_start:06d}_{time_end:06d}.mp4`` in ``root``. Class names
  are the labels in the file sorted alphabetically (or ``classes.txt`` next to the CSV).
- ``ssv2``: a Something-Something-v2 JSON list (``train.json``, ``validation.json``) of
  ``{"id", "template", "label", "placeholders"}``; the class is the ``template`` without its square
  brackets, looked up in ``labels.json`` (class name -> index) next to the list; videos are
  ``{id}.webm`` in ``root``.
- ``ucf101``: UCF101's ``ucfTrainTestlist`` as the official zip unpacks: ``trainlist0N.txt``
  (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``, labels from 1) and ``testlist0N.txt`` (paths
  only), with ``classInd.txt`` (``1 ApplyEyeMakeup``) beside them. The class of a video is its folder,
  looked up in ``classInd.txt`` (exactly, else ignoring case); a label, where given, must agree.
  ``path`` is a list file, or the folder with ``split`` and ``subset`` choosing the file. Detected
  for a ``trainlistNN.txt`` / ``testlistNN.txt`` beside a ``classInd.txt``, and for a folder holding
  ``classInd.txt`` and no sub-folders.
- ``hmdb51``: HMDB51's ``testTrainMulti_7030_splits`` folder: ``<class>_test_split<N>.txt`` per class
  and split, lines ``<video>.avi <flag>`` (1 train, 2 test, 0 unused); ``split`` and ``subset`` choose
  the videos, which are ``<class>/<video>.avi`` in ``root``. Class names are sorted alphabetically.
  Detected for a folder of ``*_test_splitN.txt`` files without sub-folders.

Paths are resolved against ``root`` (default: the annotation file's folder; ``ucf101`` and
``hmdb51`` need it given, as their archives put the lists and the videos in separate folders).
Files are not opened here; a missing video is reported when it is read (see ``vast data check``).
A UTF-8 byte-order mark and CRLF line ends are accepted in every text format.

Each format is an :class:`~vast.data.annotations.base.AnnotationFormat` (its ``detect`` and ``load``) from
a module of its own (``lists``, ``folders``, ``kinetics``, ``ssv2``, ``splits``), registered with
:func:`~vast.data.annotations.base.register_format`; a new format is one more registration.
"""

from __future__ import annotations

import os
from pathlib import Path

from vast.data.annotations import folders as _folders  # noqa: F401  (registers its formats)
from vast.data.annotations import kinetics as _kinetics  # noqa: F401  (registers its formats)
from vast.data.annotations import lists as _lists  # noqa: F401  (registers its formats)
from vast.data.annotations import splits as _splits  # noqa: F401  (registers its formats)
from vast.data.annotations import ssv2 as _ssv2  # noqa: F401  (registers its formats)
from vast.data.annotations.base import (
    CLASS_NAMES_FILE,
    FORMAT_REGISTRY,
    SPLITS,
    SUBSETS,
    AnnotationFormat,
    Annotations,
    VideoRecord,
    read_class_names,
    register_format,
    write_class_names,
)
from vast.data.annotations.kinetics import KINETICS_HEADER
from vast.data.annotations.splits import UCF101_CLASS_INDEX
from vast.errors import DataError

# The registered formats, in the order the docs list them.
FORMATS = ("list", "csv", "folder", "kinetics", "ssv2", "ucf101", "hmdb51")
SPLIT_FORMATS = tuple(name for name in FORMATS if FORMAT_REGISTRY[name].official_splits)

__all__ = [
    "CLASS_NAMES_FILE", "FORMATS", "FORMAT_REGISTRY", "KINETICS_HEADER", "SPLITS", "SPLIT_FORMATS", "SUBSETS",
    "UCF101_CLASS_INDEX", "AnnotationFormat", "Annotations", "VideoRecord", "detect_format", "load_annotations",
    "read_class_names", "register_format", "write_class_names",
]  # fmt: skip


def load_annotations(
    path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    fmt: str = "auto",
    *,
    split: int | None = None,
    subset: str | None = None,
) -> Annotations:
    """Read the annotations at ``path`` (a file, or a folder) in format ``fmt``.

    ``fmt="auto"`` detects the format (see the module docstring). ``split`` (1, 2 or 3) and ``subset``
    (``"train"`` or ``"test"``) choose the videos of the ``ucf101`` and ``hmdb51`` formats; other
    formats ignore ``subset`` and refuse ``split``. Raises :class:`~vast.errors.DataError` naming
    the file, the line and the fix for any bad input.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: annotation file not found; check the path")
    if fmt == "auto":
        fmt = detect_format(path)
    if fmt not in FORMAT_REGISTRY:
        raise DataError(f"unknown annotation format {fmt!r}; choose one of {', '.join(FORMATS)} or 'auto'")
    reader = FORMAT_REGISTRY[fmt]
    if reader.official_splits:
        records, class_names = reader.load(path, _split_root(path, reader, root, split, subset), split, subset)
    else:
        records, class_names = reader.load(path, _plain_root(path, reader, root, split))
    if not records:
        raise DataError(f"{path}: no videos listed; check that this is the right file")
    return Annotations(records, class_names, source=path, fmt=fmt)


def detect_format(path: Path) -> str:
    """The format name of ``path``: the first registered format whose ``detect`` claims it (a folder of
    official split files, else class folders; a UCF101 list, a ``.json``, a ``.csv`` by its header,
    else a list)."""
    readers = sorted(FORMAT_REGISTRY.values(), key=lambda reader: reader.priority)
    return next(reader.name for reader in readers if reader.detect(Path(path)))


def _plain_root(path: Path, reader: AnnotationFormat, root: str | os.PathLike | None, split: int | None) -> Path:
    if split is not None:  # a split number that chose nothing would pass for a protocol followed
        raise DataError(
            f"{path}: split {split} applies to the {' and '.join(SPLIT_FORMATS)} formats only, and this "
            f"is read as {reader.name!r}; drop the split (data.split: 0) or set the format"
        )
    if reader.name != "folder" and path.is_dir():
        raise DataError(f"{path}: is a folder, but format {reader.name!r} needs a file")
    return Path(root) if root is not None else (path if path.is_dir() else path.parent)


def _split_root(
    path: Path, reader: AnnotationFormat, root: str | os.PathLike | None, split: int | None, subset: str | None
) -> Path:
    if split is not None and split not in SPLITS:
        raise DataError(f"{path}: split {split} does not exist; {reader.name} has the official splits 1, 2 and 3")
    if subset is not None and subset not in SUBSETS:
        raise DataError(f"subset {subset!r} is not 'train' or 'test'")
    if root is None:
        raise DataError(
            f"{path}: the {reader.name} format needs the video folder ({reader.video_folder}) as root: set "
            "data.root, or pass --root / root="
        )
    return Path(root)
