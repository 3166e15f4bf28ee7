"""What every annotation format shares: the records it yields, the format interface and its registry,
and the readers of text, CSV, JSON and class-name files that give bad input a one-line error."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vast.errors import DataError

SPLITS = (1, 2, 3)
SUBSETS = ("train", "test")
CLASS_NAMES_FILE = "classes.txt"


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


@dataclass(frozen=True)
class AnnotationFormat:
    """One annotation format: ``detect(path)``, whether a file or folder is in it (``fmt="auto"``; it may
    raise for a file plainly meant to be, such as a CSV whose header fits no CSV format), and ``load``,
    its records (paths resolved against ``root``) and every class name: ``load(path, root)``, or
    ``load(path, root, split, subset)`` for a data set published with official splits."""

    name: str
    detect: Callable[[Path], bool]
    load: Callable[..., tuple[list[VideoRecord], list[str]]]
    priority: int = 50  # fmt="auto" asks the formats in this order, lowest first
    official_splits: bool = False  # takes split and subset, and needs root: the folder of its videos
    video_folder: str = ""  # what that root is, for the error that asks for it


# name -> format; ``fmt="auto"`` takes the first, by ``priority``, whose ``detect`` says yes.
FORMAT_REGISTRY: dict[str, AnnotationFormat] = {}


def register_format(fmt: AnnotationFormat) -> AnnotationFormat:
    """Register ``fmt`` under its ``name`` (a format of the same name is replaced)."""
    FORMAT_REGISTRY[fmt.name] = fmt
    return fmt


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
