"""Something-Something-v2: a JSON list of videos, ``labels.json`` beside it."""

from __future__ import annotations

from pathlib import Path

from vast.data.annotations.base import AnnotationFormat, VideoRecord, _read_json, register_format
from vast.errors import DataError


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


def _is_json(path: Path) -> bool:
    return not path.is_dir() and path.suffix.lower() == ".json"


register_format(AnnotationFormat("ssv2", _is_json, _load_ssv2, priority=40))
