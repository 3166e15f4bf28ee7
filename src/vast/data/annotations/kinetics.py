"""The Kinetics CSV (``label,youtube_id,time_start,time_end,split``)."""

from __future__ import annotations

from pathlib import Path

from vast.data.annotations.base import (
    AnnotationFormat,
    VideoRecord,
    _class_file_next_to,
    _names_to_indices,
    _read_csv_header,
    _read_csv_rows,
    register_format,
)
from vast.errors import DataError

KINETICS_HEADER = ("label", "youtube_id", "time_start", "time_end", "split")


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


def _is_kinetics_csv(path: Path) -> bool:
    if path.is_dir() or path.suffix.lower() != ".csv":
        return False
    header = [name.strip().lower() for name in _read_csv_header(path)]
    return tuple(header[:5]) == KINETICS_HEADER or "youtube_id" in header


register_format(AnnotationFormat("kinetics", _is_kinetics_csv, _load_kinetics, priority=50))
