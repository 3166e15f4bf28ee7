"""UCF101 and HMDB51 as they ship: their official train/test split files."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vast.data.annotations.base import AnnotationFormat, VideoRecord, _numbered_lines, register_format
from vast.errors import DataError

UCF101_CLASS_INDEX = "classInd.txt"
_UCF101_LIST = re.compile(r"(train|test)list(\d+)\.txt", re.IGNORECASE)
_HMDB51_SPLIT_FILE = re.compile(r"(.+)_test_split(\d+)\.txt")


def _no_subfolders(path: Path) -> list[str] | None:
    """The names in folder ``path`` when it holds no sub-folder (only such a folder can be a split
    folder: a class-folder data set with a stray classInd.txt stays one), else None."""
    if not path.is_dir():
        return None
    entries = list(os.scandir(path))
    return None if any(entry.is_dir() for entry in entries) else [entry.name for entry in entries]


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


def _is_hmdb51_split_folder(path: Path) -> bool:
    names = _no_subfolders(path)
    return names is not None and any(_HMDB51_SPLIT_FILE.fullmatch(name) for name in names)


def _is_ucf101_list(path: Path) -> bool:
    if path.is_dir():
        names = _no_subfolders(path)
        return names is not None and UCF101_CLASS_INDEX in names
    return bool(_UCF101_LIST.fullmatch(path.name)) and (path.parent / UCF101_CLASS_INDEX).is_file()


register_format(AnnotationFormat("hmdb51", _is_hmdb51_split_folder, _load_hmdb51, priority=10, official_splits=True,
                                 video_folder="the folder of the class folders"))  # fmt: skip
register_format(AnnotationFormat("ucf101", _is_ucf101_list, _load_ucf101, priority=20, official_splits=True,
                                 video_folder="UCF-101"))  # fmt: skip
