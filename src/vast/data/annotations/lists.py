"""Plain lists (``path label`` lines) and CSV files with ``path`` and ``label`` columns."""

from __future__ import annotations

from pathlib import Path

from vast.data.annotations.base import (
    AnnotationFormat,
    VideoRecord,
    _check_labels,
    _class_file_next_to,
    _names_to_indices,
    _parse_index,
    _read_csv_header,
    _read_csv_rows,
    _read_text,
    register_format,
)
from vast.data.annotations.kinetics import KINETICS_HEADER
from vast.errors import DataError


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


def _is_path_label_csv(path: Path) -> bool:
    if path.is_dir() or path.suffix.lower() != ".csv":
        return False
    header = [name.strip().lower() for name in _read_csv_header(path)]
    if "path" in header and "label" in header:
        return True
    raise DataError(  # a .csv neither Kinetics (asked before) nor path,label: a broken header, not a list
        f"{path} line 1: CSV header {','.join(header)!r} is neither 'path,label' nor the Kinetics "
        f"header {','.join(KINETICS_HEADER)!r}; fix the header or pass fmt"
    )


def _is_file(path: Path) -> bool:
    return not path.is_dir()


register_format(AnnotationFormat("csv", _is_path_label_csv, _load_csv, priority=60))
register_format(AnnotationFormat("list", _is_file, _load_list, priority=100))  # the fallback: any file
