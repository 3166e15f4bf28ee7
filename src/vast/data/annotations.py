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
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vast.data.decoding import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, is_image_file
from vast.errors import DataError

FORMATS = ("list", "csv", "folder", "kinetics", "ssv2", "ucf101", "hmdb51")
SPLIT_FORMATS = ("ucf101", "hmdb51")  # data sets published with three official train/test splits
SPLITS = (1, 2, 3)
SUBSETS = ("train", "test")
CLASS_NAMES_FILE = "classes.txt"
KINETICS_HEADER = ("label", "youtube_id", "time_start", "time_end", "split")
UCF101_CLASS_INDEX = "classInd.txt"
_UCF101_LIST = re.compile(r"(train|test)list(\d+)\.txt", re.IGNORECASE)
_HMDB51_SPLIT_FILE = re.compile(r"(.+)_test_split(\d+)\.txt")


@dataclass(frozen=True)
class VideoRecord:
    """One video: its path (a file, or a frame folder) and its class index."""

    path: Path
    label: int


@dataclass
class Annotations:
    """The videos of a data set split and the names of all its classes (index -> name)."""

    records: list[VideoRecord]
    class_names: list[str]
    source: Path | None = None
    fmt: str = "list"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> VideoRecord:
        return self.records[index]


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
    if fmt not in FORMATS:
        raise DataError(f"unknown annotation format {fmt!r}; choose one of {', '.join(FORMATS)} or 'auto'")
    if fmt in SPLIT_FORMATS:
        records, class_names = _load_split_format(path, root, fmt, split, subset)
    else:
        records, class_names = _load_plain_format(path, root, fmt, split)
    if not records:
        raise DataError(f"{path}: no videos listed; check that this is the right file")
    return Annotations(records, class_names, source=path, fmt=fmt)


def _load_plain_format(
    path: Path, root: str | os.PathLike | None, fmt: str, split: int | None
) -> tuple[list[VideoRecord], list[str]]:
    if split is not None:  # a split number that chose nothing would pass for a protocol followed
        raise DataError(
            f"{path}: split {split} applies to the {' and '.join(SPLIT_FORMATS)} formats only, and this "
            f"is read as {fmt!r}; drop the split (data.split: 0) or set the format"
        )
    if fmt != "folder" and path.is_dir():
        raise DataError(f"{path}: is a folder, but format {fmt!r} needs a file")
    root_dir = Path(root) if root is not None else (path if path.is_dir() else path.parent)
    loader = {
        "list": _load_list,
        "csv": _load_csv,
        "folder": _load_folder,
        "kinetics": _load_kinetics,
        "ssv2": _load_ssv2,
    }[fmt]
    return loader(path, root_dir)


def detect_format(path: Path) -> str:
    """The format name of ``path``: a folder (official split files, else class folders), a UCF101
    list, a ``.json``, a ``.csv`` by its header, else a list."""
    if path.is_dir():
        return _detect_folder_format(path)
    if _UCF101_LIST.fullmatch(path.name) and (path.parent / UCF101_CLASS_INDEX).is_file():
        return "ucf101"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "ssv2"
    if suffix == ".csv":
        header = [name.strip().lower() for name in _read_csv_header(path)]
        if tuple(header[:5]) == KINETICS_HEADER or "youtube_id" in header:
            return "kinetics"
        if "path" in header and "label" in header:
            return "csv"
        raise DataError(
            f"{path} line 1: CSV header {','.join(header)!r} is neither 'path,label' nor the Kinetics "
            f"header {','.join(KINETICS_HEADER)!r}; fix the header or pass fmt"
        )
    return "list"


def _detect_folder_format(path: Path) -> str:
    # Only a folder without sub-folders can be a split folder: a class-folder data set that also
    # holds a stray classInd.txt stays a class-folder data set.
    entries = list(os.scandir(path))
    if any(entry.is_dir() for entry in entries):
        return "folder"
    names = [entry.name for entry in entries]
    if any(_HMDB51_SPLIT_FILE.fullmatch(name) for name in names):
        return "hmdb51"
    if UCF101_CLASS_INDEX in names:
        return "ucf101"
    return "folder"


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a text file, one per line (line ``i`` is class ``i``)."""
    path = Path(path)
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines()]
    while names and not names[-1]:
        names.pop()
    for number, name in enumerate(names, start=1):
        if not name:
            raise DataError(f"{path} line {number}: empty class name; write one name per line")
    if len(set(names)) != len(names):
        raise DataError(f"{path}: class names are repeated; each name must appear once")
    return names


def write_class_names(path: str | os.PathLike, class_names: Sequence[str]) -> None:
    """Write class names one per line, the format :func:`read_class_names` reads."""
    Path(path).write_text("".join(f"{name}\n" for name in class_names), encoding="utf-8")


def _class_file_next_to(path: Path) -> list[str] | None:
    candidate = path.parent / CLASS_NAMES_FILE
    return read_class_names(candidate) if candidate.is_file() else None


def _check_labels(path: Path, labelled: list[tuple[int, int]], class_names: list[str] | None) -> list[str]:
    """Check (line, label) pairs against the class names; without names, make "0", "1", ..."""
    if class_names is None:
        return [str(i) for i in range(max(label for _, label in labelled) + 1)] if labelled else []
    for number, label in labelled:
        if label >= len(class_names):
            raise DataError(
                f"{path} line {number}: label {label} is out of range for the {len(class_names)} classes "
                f"of {path.parent / CLASS_NAMES_FILE}; fix the label or the class-name file"
            )
    return class_names


def _parse_index(path: Path, number: int, text: str) -> int:
    try:
        label = int(text)
    except ValueError:
        raise DataError(
            f"{path} line {number}: label {text!r} is not a class index; write a whole number >= 0"
        ) from None
    if label < 0:
        raise DataError(f"{path} line {number}: label {label} is negative; class indices start at 0")
    return label


def _load_list(path: Path, root: Path) -> tuple[list[VideoRecord], list[str]]:
    records, labelled = [], []
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)  # the path may contain spaces, the label cannot
        if len(parts) != 2:
            raise DataError(
                f"{path} line {number}: expected 'relative/path label_index', got {line!r}; "
                "fix or remove the line"
            )
        label = _parse_index(path, number, parts[1])
        records.append(VideoRecord(root / parts[0], label))
        labelled.append((number, label))
    return records, _check_labels(path, labelled, _class_file_next_to(path))


def _load_csv(path: Path, root: Path) -> tuple[list[VideoRecord], list[str]]:
    rows = _read_csv_rows(path, required=("path", "label"))
    class_names = _class_file_next_to(path)
    labels = [row["label"].strip() for _, row in rows]
    if all(label.lstrip("-").isdigit() for label in labels):
        labelled = [(number, _parse_index(path, number, row["label"])) for number, row in rows]
        class_names = _check_labels(path, labelled, class_names)
        indices = [label for _, label in labelled]
    else:
        class_names = class_names or sorted(set(labels))
        indices = _names_to_indices(path, [(n, row["label"].strip()) for n, row in rows], class_names)
    records = [VideoRecord(root / row["path"].strip(), index) for (_, row), index in zip(rows, indices)]
    return records, class_names


def _names_to_indices(path: Path, named: list[tuple[int, str]], class_names: list[str]) -> list[int]:
    lookup = {name: i for i, name in enumerate(class_names)}
    indices = []
    for number, name in named:
        if name not in lookup:
            raise DataError(
                f"{path} line {number}: unknown class {name!r}; add it to {path.parent / CLASS_NAMES_FILE} "
                "or fix the label"
            )
        indices.append(lookup[name])
    return indices


def _load_folder(path: Path, root: Path) -> tuple[list[VideoRecord], list[str]]:
    class_dirs = sorted(entry for entry in root.iterdir() if entry.is_dir())
    if not class_dirs:
        raise DataError(f"{root}: no class folders; put each class's videos or images in a folder named after it")
    records: list[VideoRecord] = []
    images: list[Path] = []
    videos: list[Path] = []
    ignored: set[str] = set()
    for label, class_dir in enumerate(class_dirs):
        # os.scandir knows which entries are folders without a stat call per file (ImageNet: 1.28 M files).
        for entry in sorted(os.scandir(class_dir), key=lambda e: e.name):
            kind = images if is_image_file(entry.name) else videos if _is_video_entry(entry) else None
            if kind is None:
                ignored.add(os.path.splitext(entry.name)[1].lower() or entry.name)
                continue
            kind.append(Path(entry.path))
            records.append(VideoRecord(kind[-1], label))
    _check_one_media_kind(root, images, videos, ignored)
    return records, [d.name for d in class_dirs]


def _is_video_entry(entry: os.DirEntry) -> bool:
    return entry.is_dir() or os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS


def _check_one_media_kind(root: Path, images: list[Path], videos: list[Path], ignored: set[str]) -> None:
    """A class-folder data set holds images or videos: not both, and not neither."""
    if images and videos:
        raise DataError(
            f"{root}: the class folders mix {len(images)} images (e.g. {images[0].relative_to(root)}) and "
            f"{len(videos)} videos (e.g. {videos[0].relative_to(root)}); keep one kind in the folder, or list "
            "both in a list or CSV annotation file"
        )
    if not images and not videos:
        found = f"; found only {', '.join(sorted(ignored)[:5])}" if ignored else ""
        raise DataError(
            f"{root}: the class folders hold no videos ({' '.join(VIDEO_EXTENSIONS[:4])} ..., frame folders) "
            f"and no images ({' '.join(IMAGE_EXTENSIONS)}){found}; check the folder"
        )


def _load_kinetics(path: Path, root: Path) -> tuple[list[VideoRecord], list[str]]:
    rows = _read_csv_rows(path, required=("label", "youtube_id", "time_start", "time_end"))
    class_names = _class_file_next_to(path) or sorted({row["label"].strip() for _, row in rows})
    indices = _names_to_indices(path, [(n, row["label"].strip()) for n, row in rows], class_names)
    records = []
    for (number, row), index in zip(rows, indices):
        start = _parse_seconds(path, number, row["time_start"])
        end = _parse_seconds(path, number, row["time_end"])
        records.append(VideoRecord(root / f"{row['youtube_id'].strip()}_{start:06d}_{end:06d}.mp4", index))
    return records, class_names


def _parse_seconds(path: Path, number: int, text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        raise DataError(
            f"{path} line {number}: time {text!r} is not a number of seconds; fix the line"
        ) from None


def _load_ssv2(path: Path, root: Path) -> tuple[list[VideoRecord], list[str]]:
    labels_file = path.parent / "labels.json"
    if not labels_file.is_file():
        raise DataError(f"{path}: {labels_file} not found; Something-Something-v2 needs its labels.json")
    name_to_index = _read_json(labels_file)
    if not isinstance(name_to_index, dict):
        raise DataError(f"{labels_file}: expected a JSON object mapping class name -> index")
    try:
        by_index = {int(index): name for name, index in name_to_index.items()}
    except (TypeError, ValueError):
        raise DataError(f"{labels_file}: every class index must be a whole number") from None
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"{labels_file}: class indices must be 0..{len(by_index) - 1}, each once")
    class_names = [by_index[i] for i in range(len(by_index))]
    entries = _read_json(path)
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a JSON list of {{'id', 'template', ...}} objects")
    records = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise DataError(
                f"{path} entry {number}: needs 'id' and 'template' (test lists without labels cannot "
                "be used for training or evaluation)"
            )
        name = entry["template"].replace("[", "").replace("]", "")
        if name not in name_to_index:
            raise DataError(f"{path} entry {number}: class {name!r} is not in {labels_file}; fix the entry")
        records.append(VideoRecord(root / f"{entry['id']}.webm", int(name_to_index[name])))
    return records, class_names


def _load_split_format(
    path: Path, root: str | os.PathLike | None, fmt: str, split: int | None, subset: str | None
) -> tuple[list[VideoRecord], list[str]]:
    if split is not None and split not in SPLITS:
        raise DataError(f"{path}: split {split} does not exist; {fmt} has the official splits 1, 2 and 3")
    if subset is not None and subset not in SUBSETS:
        raise DataError(f"subset {subset!r} is not 'train' or 'test'")
    if root is None:
        videos = "UCF-101" if fmt == "ucf101" else "the folder of the class folders"
        raise DataError(
            f"{path}: the {fmt} format needs the video folder ({videos}) as root: set data.root, or pass "
            "--root / root="
        )
    if fmt == "ucf101":
        return _load_ucf101(path, Path(root), split, subset)
    return _load_hmdb51(path, Path(root), split, subset)


def _needs_split_and_subset(folder: Path, split: int | None, subset: str | None) -> tuple[int, str]:
    """A split folder holds every split of both subsets: which one is wanted must be said."""
    if split is None or subset is None:
        raise DataError(
            f"{folder}: a folder of official split files needs the split (1, 2 or 3: data.split, --split) "
            "and the subset ('train' or 'test': data.train or data.val, --subset); set the split"
        )
    return split, subset


def _load_ucf101(
    path: Path, root: Path, split: int | None, subset: str | None
) -> tuple[list[VideoRecord], list[str]]:
    listing = _ucf101_list_file(path, split, subset)
    class_index = listing.parent / UCF101_CLASS_INDEX
    class_names = _read_ucf101_class_index(class_index, listing)
    exact = {name: i for i, name in enumerate(class_names)}
    folded = {name.casefold(): i for i, name in enumerate(class_names)}
    records = []
    for number, line in _numbered_lines(listing):
        parts = line.split()
        if len(parts) > 2 or "/" not in parts[0]:
            raise DataError(
                f"{listing} line {number}: expected 'Class/video.avi' or 'Class/video.avi label', got "
                f"{line!r}; fix the line"
            )
        folder = parts[0].split("/", 1)[0]
        # The folder is the class. Matched ignoring case as a fallback for copies whose folders were
        # renamed (the official files agree with classInd.txt; only the file stems differ in case,
        # e.g. HandstandPushups/v_HandStandPushups_g01_c01.avi).
        label = exact.get(folder, folded.get(folder.casefold()))
        if label is None:
            raise DataError(
                f"{listing} line {number}: class folder {folder!r} is not in {class_index}; fix the line or "
                "use the classInd.txt that came with this list"
            )
        if len(parts) == 2:
            _check_ucf101_label(listing, number, parts[1], label, class_names)
        records.append(VideoRecord(root / parts[0], label))
    return records, class_names


def _ucf101_list_file(path: Path, split: int | None, subset: str | None) -> Path:
    """The list to read: ``path`` itself, or in a folder the list of ``split`` and ``subset``."""
    if path.is_dir():
        split, subset = _needs_split_and_subset(path, split, subset)
        listing = path / f"{subset}list{split:02d}.txt"
        if not listing.is_file():
            raise DataError(
                f"{path}: {listing.name} not found; the ucfTrainTestlist folder of UCF101 holds "
                "trainlist01..03.txt and testlist01..03.txt"
            )
        return listing
    named = _UCF101_LIST.fullmatch(path.name)
    if named and split is not None and int(named.group(2)) != split:
        raise DataError(
            f"{path}: is the list of split {int(named.group(2))}, but split {split} was asked for; point at "
            f"the list of split {split} (or the ucfTrainTestlist folder), or set data.split"
        )
    if named and subset == "train" and named.group(1).lower() == "test":
        # Test videos are never trained on; evaluating on a training list (subset "test") is allowed.
        raise DataError(f"{path}: is a test list, given as training data; use trainlist{named.group(2)}.txt")
    return path


def _read_ucf101_class_index(path: Path, listing: Path) -> list[str]:
    """Names from ``classInd.txt`` (``1 ApplyEyeMakeup`` per line): class ``i`` is index ``i + 1``."""
    if not path.is_file():
        raise DataError(
            f"{listing}: {path} not found; UCF101's lists need the classInd.txt of ucfTrainTestlist beside "
            "them (unpack UCF101TrainTestSplits-RecognitionTask.zip whole)"
        )
    by_index: dict[int, str] = {}
    for number, line in _numbered_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path} line {number}: expected 'index ClassName', got {line!r}; fix the line")
        index = int(parts[0])
        if index in by_index or parts[1] in by_index.values():
            raise DataError(f"{path} line {number}: {line!r} repeats an index or a class name; fix the file")
        by_index[index] = parts[1]
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise DataError(f"{path}: class indices must be 1..{len(by_index)}, each once; fix the file")
    return [by_index[i] for i in range(1, len(by_index) + 1)]


def _check_ucf101_label(listing: Path, number: int, text: str, label: int, class_names: list[str]) -> None:
    """A training list's label (from 1) must name the class of the video's folder."""
    if not text.isdigit() or not 1 <= int(text) <= len(class_names):
        raise DataError(
            f"{listing} line {number}: label {text!r} is not in 1..{len(class_names)} "
            f"(UCF101 labels are classInd.txt's indices, from 1); fix the label"
        )
    if int(text) - 1 != label:
        raise DataError(
            f"{listing} line {number}: label {text} is {class_names[int(text) - 1]!r} in classInd.txt, but "
            f"the video is in the folder of {class_names[label]!r}; fix the label or the classInd.txt"
        )


def _load_hmdb51(
    folder: Path, root: Path, split: int | None, subset: str | None
) -> tuple[list[VideoRecord], list[str]]:
    if not folder.is_dir():
        raise DataError(
            f"{folder}: the hmdb51 format reads the folder of split files (testTrainMulti_7030_splits), "
            "not one of its files; point at the folder"
        )
    split, subset = _needs_split_and_subset(folder, split, subset)
    files = _hmdb51_split_files(folder, split)
    class_names = sorted(files)  # as mmaction2's HMDB51 preparation: the sorted class names
    wanted = "1" if subset == "train" else "2"
    records = []
    for label, name in enumerate(class_names):
        for number, line in _numbered_lines(files[name]):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(
                    f"{files[name]} line {number}: expected '<video>.avi <flag>' with flag 1 (train), 2 (test) "
                    f"or 0 (unused), got {line!r}; fix the line"
                )
            if parts[1] == wanted:
                records.append(VideoRecord(root / name / parts[0], label))
    return records, class_names


def _hmdb51_split_files(folder: Path, split: int) -> dict[str, Path]:
    """Class name -> its file of ``split``; every class that has a file of any split needs one here."""
    by_split: dict[int, dict[str, Path]] = {}
    for entry in sorted(folder.iterdir()):
        named = _HMDB51_SPLIT_FILE.fullmatch(entry.name)
        if named and entry.is_file():
            by_split.setdefault(int(named.group(2)), {})[named.group(1)] = entry
    files = by_split.get(split, {})
    if not files:
        raise DataError(
            f"{folder}: no <class>_test_split{split}.txt files; point at HMDB51's testTrainMulti_7030_splits folder"
        )
    every_class = set().union(*(names.keys() for names in by_split.values()))
    missing = sorted(every_class - files.keys())
    if missing:
        raise DataError(
            f"{folder}: {missing[0]}_test_split{split}.txt is missing ({len(missing)} class(es) lack split {split}); "
            "unpack test_train_splits.rar again"
        )
    return files


def _numbered_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines that are not blank, stripped (CRLF ends, trailing blanks)."""
    lines = enumerate(_read_text(path).splitlines(), start=1)
    return [(number, line.strip()) for number, line in lines if line.strip()]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: skips the byte-order mark Windows editors write
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason}); is this an annotation file?") from None


def _read_json(path: Path) -> object:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg}); fix the file") from None


def _read_csv_header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def _read_csv_rows(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows as (line number, {column: value}); checks the header has the ``required`` columns."""
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines())
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    if missing:
        raise DataError(
            f"{path} line 1: header lacks column(s) {', '.join(missing)}; "
            f"the header must name {','.join(required)}"
        )
    reader.fieldnames = header
    rows = []
    for row in reader:
        number = reader.line_num
        if None in row or any(row.get(name) is None for name in required):
            raise DataError(
                f"{path} line {number}: expected {len(header)} columns ({','.join(header)}); fix the line"
            )
        if not any(value.strip() for value in row.values()):
            continue
        rows.append((number, row))
    return rows
