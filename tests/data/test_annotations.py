"""Every annotation format, read from small real files in that exact format, and the errors."""

import json

import pytest

from vast.data.annotations import VideoRecord, detect_format, load_annotations, read_class_names
from vast.errors import DataError


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_list_with_comments_blank_lines_and_class_file(tmp_path):
    listing = write(
        tmp_path / "train.txt",
        "# videos of the training split\n"
        "\n"
        "walk/a.mp4 0\n"
        "run/b c.mp4 2   \n"  # a space in the file name, trailing blanks
        "  # indented comment\n"
        "jump/d.mp4 1\n",
    )
    write(tmp_path / "classes.txt", "walk\njump\nrun\n")
    ann = load_annotations(listing)
    assert ann.fmt == "list"
    assert ann.records == [
        VideoRecord(tmp_path / "walk/a.mp4", 0),
        VideoRecord(tmp_path / "run/b c.mp4", 2),
        VideoRecord(tmp_path / "jump/d.mp4", 1),
    ]
    assert ann.class_names == ["walk", "jump", "run"] and ann.num_classes == 3


def test_list_without_class_file_names_classes_by_index_and_root_overrides(tmp_path):
    listing = write(tmp_path / "lists" / "val.txt", "x.mp4 3\ny.mp4 0\n")
    ann = load_annotations(listing, root=tmp_path / "videos")
    assert ann.class_names == ["0", "1", "2", "3"]
    assert ann.records[0] == VideoRecord(tmp_path / "videos" / "x.mp4", 3)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("just_a_path.mp4", "line 2: expected 'relative/path label_index'"),
        ("clip.mp4 walk", "line 2: label 'walk' is not a class index"),
        ("clip.mp4 -1", "line 2: label -1 is negative"),
        ("clip.mp4 5", "line 2: label 5 is out of range for the 3 classes"),
    ],
)
def test_list_errors_name_file_line_and_fix(tmp_path, line, message):
    listing = write(tmp_path / "bad.txt", f"ok.mp4 0\n{line}\n")
    write(tmp_path / "classes.txt", "a\nb\nc\n")
    with pytest.raises(DataError) as info:
        load_annotations(listing)
    text = str(info.value)
    assert str(listing) in text and message in text
    assert "\n" not in text


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_annotations(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="no videos listed"):
        load_annotations(write(tmp_path / "empty.txt", "# nothing yet\n\n"))


def test_csv_with_index_labels(tmp_path):
    table = write(tmp_path / "split.csv", "path,label\nclips/one.mp4,1\nclips/two.mp4,0\n")
    ann = load_annotations(table)
    assert ann.fmt == "csv"
    assert ann.records == [
        VideoRecord(tmp_path / "clips/one.mp4", 1),
        VideoRecord(tmp_path / "clips/two.mp4", 0),
    ]
    assert ann.class_names == ["0", "1"]


def test_csv_with_class_names_sorted_alphabetically(tmp_path):
    table = write(
        tmp_path / "split.csv",
        'label,path,notes\nwave,w.mp4,\n"jump, high",j.mp4,quoted name\nwave,w2.mp4,x\n',
    )
    ann = load_annotations(table)
    assert ann.class_names == ["jump, high", "wave"]
    assert [r.label for r in ann.records] == [1, 0, 1]


def test_csv_unknown_class_and_bad_header(tmp_path):
    write(tmp_path / "classes.txt", "jump\nwave\n")
    table = write(tmp_path / "split.csv", "path,label\na.mp4,jump\nb.mp4,swim\n")
    with pytest.raises(DataError, match=r"split.csv line 3: unknown class 'swim'"):
        load_annotations(table)
    headless = write(tmp_path / "noheader.csv", "a.mp4,0\n")
    with pytest.raises(DataError, match="line 1: CSV header"):
        load_annotations(headless)
    short = write(tmp_path / "short.csv", "path,label\na.mp4\n")
    with pytest.raises(DataError, match="line 2: expected 2 columns"):
        load_annotations(short)


def test_folder_per_class(tmp_path):
    root = tmp_path / "data"
    for name in ("b.mp4", "a.webm", "readme.txt"):
        write(root / "waving" / name, "")
    write(root / "clapping" / "c.avi", "")
    (root / "clapping" / "frames_0001").mkdir()  # a frame-folder video
    ann = load_annotations(root)
    assert ann.fmt == "folder" and ann.class_names == ["clapping", "waving"]
    assert ann.records == [
        VideoRecord(root / "clapping" / "c.avi", 0),
        VideoRecord(root / "clapping" / "frames_0001", 0),
        VideoRecord(root / "waving" / "a.webm", 1),
        VideoRecord(root / "waving" / "b.mp4", 1),
    ]


KINETICS_CSV = """label,youtube_id,time_start,time_end,split
testifying,---QUuC4vJs,84,94,train
"passing American football (in game)",--6bJUbfpnQ,17,27,train
abseiling,--3ouPhoy2A,7,17,train
testifying,-0WZtYq3kXg,1234,1244,train
"""


def test_kinetics_csv(tmp_path):
    table = write(tmp_path / "kinetics400" / "train.csv", KINETICS_CSV)
    assert detect_format(table) == "kinetics"
    ann = load_annotations(table, root=tmp_path / "videos")
    assert ann.class_names == ["abseiling", "passing American football (in game)", "testifying"]
    assert ann.records == [
        VideoRecord(tmp_path / "videos" / "---QUuC4vJs_000084_000094.mp4", 2),
        VideoRecord(tmp_path / "videos" / "--6bJUbfpnQ_000017_000027.mp4", 1),
        VideoRecord(tmp_path / "videos" / "--3ouPhoy2A_000007_000017.mp4", 0),
        VideoRecord(tmp_path / "videos" / "-0WZtYq3kXg_001234_001244.mp4", 2),
    ]


def test_kinetics_uses_the_class_file_order_and_rejects_unknown_classes(tmp_path):
    write(tmp_path / "classes.txt", "testifying\nabseiling\npassing American football (in game)\n")
    table = write(tmp_path / "val.csv", KINETICS_CSV)
    ann = load_annotations(table)
    assert [r.label for r in ann.records] == [0, 2, 1, 0]
    write(tmp_path / "classes.txt", "testifying\nabseiling\n")
    with pytest.raises(DataError, match=r"val.csv line 3: unknown class 'passing American football \(in"):
        load_annotations(table)


def write_ssv2(folder, entries):
    labels = {
        "Putting something on a surface": "0",
        "Putting something on something": "1",
        "Pushing something from left to right": "2",
    }
    write(folder / "labels.json", json.dumps(labels))
    return write(folder / "validation.json", json.dumps(entries))


def test_something_something_v2_json(tmp_path):
    entries = [
        {
            "id": "74225",
            "label": "putting a pen on a book",
            "template": "Putting [something] on [something]",
            "placeholders": ["a pen", "a book"],
        },
        {
            "id": "116154",
            "label": "pushing keys from left to right",
            "template": "Pushing [something] from left to right",
            "placeholders": ["keys"],
        },
    ]
    listing = write_ssv2(tmp_path / "annotations", entries)
    ann = load_annotations(listing, root=tmp_path / "20bn-something-something-v2")
    assert ann.fmt == "ssv2"
    assert ann.class_names == [
        "Putting something on a surface",
        "Putting something on something",
        "Pushing something from left to right",
    ]
    videos = tmp_path / "20bn-something-something-v2"
    assert ann.records == [VideoRecord(videos / "74225.webm", 1), VideoRecord(videos / "116154.webm", 2)]


def test_something_something_v2_errors(tmp_path):
    unknown = [{"id": "1", "template": "Juggling [something]", "label": "juggling", "placeholders": []}]
    listing = write_ssv2(tmp_path, unknown)
    with pytest.raises(DataError, match=r"entry 1: class 'Juggling something' is not in .*labels.json"):
        load_annotations(listing)
    write(tmp_path / "validation.json", '[{"id": "1",')
    with pytest.raises(DataError, match="line 1: invalid JSON"):
        load_annotations(listing)
    lonely = write(tmp_path / "alone" / "train.json", "[]")
    with pytest.raises(DataError, match=r"labels\.json not found"):
        load_annotations(lonely)


def test_format_can_be_forced_and_unknown_format_is_an_error(tmp_path):
    listing = write(tmp_path / "videos.lst", "a.mp4 0\n")
    assert load_annotations(listing, fmt="list").records == [VideoRecord(tmp_path / "a.mp4", 0)]
    with pytest.raises(DataError, match="unknown annotation format 'yaml'"):
        load_annotations(listing, fmt="yaml")


def test_class_name_file_errors(tmp_path):
    assert read_class_names(write(tmp_path / "a.txt", "x\ny\n\n")) == ["x", "y"]
    with pytest.raises(DataError, match="line 2: empty class name"):
        read_class_names(write(tmp_path / "b.txt", "x\n\ny\n"))
    with pytest.raises(DataError, match="repeated"):
        read_class_names(write(tmp_path / "c.txt", "x\nx\n"))


def test_a_registered_format_is_detected_and_loaded(tmp_path, monkeypatch):
    """A new format is one AnnotationFormat registered: load_annotations and fmt="auto" find it."""
    from vast.data import annotations
    from vast.data.annotations.base import AnnotationFormat, VideoRecord

    monkeypatch.setattr(annotations.base, "FORMAT_REGISTRY", dict(annotations.FORMAT_REGISTRY))
    monkeypatch.setattr(annotations, "FORMAT_REGISTRY", annotations.base.FORMAT_REGISTRY)

    def load_tsv(path, root):
        rows = [line.split("\t") for line in path.read_text().splitlines()]
        names = sorted({label for _, label in rows})
        return [VideoRecord(root / file, names.index(label)) for file, label in rows], names

    # priority 45: after ssv2, before kinetics and csv
    annotations.register_format(AnnotationFormat("tsv", lambda path: path.suffix == ".tsv", load_tsv, priority=45))
    listing = tmp_path / "clips.tsv"
    listing.write_text("a.mp4\twalk\nb.mp4\trun\n")
    assert annotations.detect_format(listing) == "tsv"
    loaded = annotations.load_annotations(listing)
    assert loaded.fmt == "tsv" and loaded.class_names == ["run", "walk"]
    assert loaded.records == [VideoRecord(tmp_path / "a.mp4", 1), VideoRecord(tmp_path / "b.mp4", 0)]
    (tmp_path / "clips.txt").write_text("a.mp4 0\n")
    assert annotations.detect_format(tmp_path / "clips.txt") == "list"  # the others still come after it
