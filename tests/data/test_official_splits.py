"""UCF101 and HMDB51 read from their split files as the official archives unpack them: small fakes with
the real layouts (CRLF classInd.txt, 1-based training labels, label-less test lists, HMDB51's per-class
files with 0/1/2 flags), the errors, and the way a recipe reaches them through the engine.

Expected labels are written out by hand from the fake classInd.txt, not computed by the code under test."""

import pytest

from vast.cli.main import main
from vast.data.annotations import VideoRecord, detect_format, load_annotations
from vast.engine.config import load_config
from vast.engine.data import read_annotations
from vast.engine.evaluate import LoadedRun, annotations_for_eval
from vast.errors import ConfigError, DataError

# classInd.txt as UCF101 ships it: "index ClassName", CRLF line ends. Class i is label i - 1.
CLASS_IND = "1 ApplyEyeMakeup\r\n2 Archery\r\n3 HandstandPushups\r\n4 YoYo\r\n"

# Per split: the training list (with 1-based labels) and the test list (paths only), CRLF, a trailing
# blank line. HandstandPushups keeps UCF101's own spelling: the folder as classInd.txt has it, the
# file stem with a capital S.
UCF_LISTS = {
    1: (
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
        "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\r\n"
        "YoYo/v_YoYo_g08_c02.avi 4\r\n"
        "\r\n",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
        "Archery/v_Archery_g01_c01.avi\r\n"
        "HandstandPushups/v_HandStandPushups_g01_c01.avi\r\n"
        "\r\n",
    ),
    2: (
        "Archery/v_Archery_g01_c01.avi 2\r\nYoYo/v_YoYo_g01_c03.avi 4\r\n",
        "YoYo/v_YoYo_g08_c02.avi\r\n",
    ),
    3: (
        "HandstandPushups/v_HandStandPushups_g01_c01.avi 3\r\n",
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\r\nArchery/v_Archery_g09_c04.avi\r\n",
    ),
}

# HMDB51's per-class split files: "<video>.avi <flag> " (with the trailing blank of the real files),
# 1 train, 2 test, 0 unused. "sword" and "sword_exercise" test the class name taken from the file name;
# the clap video's leading '#' is part of a real HMDB51 file name, not a comment.
HMDB_VIDEOS = {
    "brush_hair": [
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
        "Brushing_Hair_brush_hair_h_cm_np1_ri_goo_1.avi",
        "Blonde_brush_hair_f_nm_np1_le_goo_2.avi",
    ],
    "clap": [
        "#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi",
        "Applauding_clap_u_cm_np1_fr_med_2.avi",
        "Crowd_clap_f_cm_np1_ba_med_1.avi",
    ],
    "sword": [
        "Sword_Fight_sword_f_cm_np2_le_bad_0.avi",
        "Duel_sword_f_nm_np2_ri_med_3.avi",
        "Fencing_sword_f_cm_np2_fr_goo_1.avi",
    ],
    "sword_exercise": [
        "Kata_sword_exercise_f_cm_np1_fr_goo_0.avi",
        "Form_sword_exercise_f_nm_np1_le_goo_1.avi",
        "Drill_sword_exercise_u_cm_np1_ri_med_2.avi",
    ],
}
HMDB_FLAGS = {1: ("1", "2", "0"), 2: ("2", "0", "1"), 3: ("0", "1", "2")}  # split -> flags of each class's videos
HMDB_LABELS = {"brush_hair": 0, "clap": 1, "sword": 2, "sword_exercise": 3}  # sorted by name


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))  # bytes: the CRLF line ends stay as written
    return path


@pytest.fixture
def ucf(tmp_path):
    """``ucfTrainTestlist/`` as UCF101TrainTestSplits-RecognitionTask.zip unpacks, and the video root."""
    lists = tmp_path / "ucfTrainTestlist"
    write(lists / "classInd.txt", CLASS_IND)
    for split, (train, test) in UCF_LISTS.items():
        write(lists / f"trainlist{split:02d}.txt", train)
        write(lists / f"testlist{split:02d}.txt", test)
    (tmp_path / "UCF-101").mkdir()
    return lists, tmp_path / "UCF-101"


@pytest.fixture
def hmdb(tmp_path):
    """``testTrainMulti_7030_splits/`` as test_train_splits.rar unpacks, and the video root."""
    splits = tmp_path / "testTrainMulti_7030_splits"
    for name, videos in HMDB_VIDEOS.items():
        for split, flags in HMDB_FLAGS.items():
            lines = "".join(f"{video} {flag} \n" for video, flag in zip(videos, flags))
            write(splits / f"{name}_test_split{split}.txt", lines)
    (tmp_path / "hmdb51").mkdir()
    return splits, tmp_path / "hmdb51"


def test_ucf101_training_list_labels_from_one_and_class_names_from_class_ind(ucf):
    lists, videos = ucf
    ann = load_annotations(lists / "trainlist01.txt", root=videos)
    assert ann.fmt == "ucf101"
    assert ann.class_names == ["ApplyEyeMakeup", "Archery", "HandstandPushups", "YoYo"]
    assert ann.records == [
        VideoRecord(videos / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi", 0),
        VideoRecord(videos / "HandstandPushups" / "v_HandStandPushups_g08_c01.avi", 2),
        VideoRecord(videos / "YoYo" / "v_YoYo_g08_c02.avi", 3),
    ]


def test_ucf101_test_list_without_labels_takes_the_class_from_the_folder(ucf):
    lists, videos = ucf
    ann = load_annotations(lists / "testlist01.txt", root=videos)
    assert ann.records == [
        VideoRecord(videos / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi", 0),
        VideoRecord(videos / "Archery" / "v_Archery_g01_c01.avi", 1),
        VideoRecord(videos / "HandstandPushups" / "v_HandStandPushups_g01_c01.avi", 2),
    ]
    assert ann.num_classes == 4  # every class of classInd.txt, also those without a test video here


@pytest.mark.parametrize(
    ("split", "train", "test"),
    [
        (1, [0, 2, 3], [0, 1, 2]),
        (2, [1, 3], [3]),
        (3, [2], [0, 1]),
    ],
)
def test_ucf101_folder_with_split_and_subset_picks_the_list(ucf, split, train, test):
    lists, videos = ucf
    got_train = load_annotations(lists, root=videos, split=split, subset="train")
    got_test = load_annotations(lists, root=videos, split=split, subset="test")
    assert got_train.fmt == got_test.fmt == "ucf101"
    assert [r.label for r in got_train.records] == train
    assert [r.label for r in got_test.records] == test
    named = load_annotations(lists / f"testlist{split:02d}.txt", root=videos, split=split, subset="test")
    assert named.records == got_test.records


def test_ucf101_class_folder_matched_ignoring_case_as_a_fallback(ucf):
    lists, videos = ucf
    listing = write(
        lists / "testlist01.txt",
        "HandStandPushups/v_HandStandPushups_g02_c01.avi\r\napplyeyemakeup/v_ApplyEyeMakeup_g02_c01.avi\r\n",
    )
    ann = load_annotations(listing, root=videos)
    assert ann.records == [
        VideoRecord(videos / "HandStandPushups" / "v_HandStandPushups_g02_c01.avi", 2),
        VideoRecord(videos / "applyeyemakeup" / "v_ApplyEyeMakeup_g02_c01.avi", 0),
    ]


def test_ucf101_byte_order_marks_are_skipped(ucf):
    lists, videos = ucf
    write(lists / "classInd.txt", "\ufeff" + CLASS_IND)
    write(lists / "testlist01.txt", "\ufeffArchery/v_Archery_g01_c01.avi\r\n")
    ann = load_annotations(lists / "testlist01.txt", root=videos)
    assert ann.class_names[0] == "ApplyEyeMakeup"
    assert ann.records == [VideoRecord(videos / "Archery" / "v_Archery_g01_c01.avi", 1)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Archery/v_Archery_g01_c01.avi 0", r"line 2: label '0' is not in 1\.\.4 \(UCF101 labels"),
        ("Archery/v_Archery_g01_c01.avi 5", r"line 2: label '5' is not in 1\.\.4"),
        ("Archery/v_Archery_g01_c01.avi 1", r"line 2: label 1 is 'ApplyEyeMakeup' in classInd.txt, but the video"),
        ("Juggling/v_Juggling_g01_c01.avi 2", r"line 2: class folder 'Juggling' is not in .*classInd.txt"),
        ("v_Archery_g01_c01.avi 2", r"line 2: expected 'Class/video.avi' or 'Class/video.avi label'"),
        ("Archery/v_Archery_g01_c01.avi 2 extra", r"line 2: expected 'Class/video.avi'"),
    ],
)
def test_ucf101_list_errors_name_the_file_and_line(ucf, line, message):
    lists, videos = ucf
    listing = write(lists / "trainlist01.txt", f"YoYo/v_YoYo_g08_c02.avi 4\r\n{line}\r\n")
    with pytest.raises(DataError, match=message) as info:
        load_annotations(listing, root=videos)
    assert str(listing) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 ApplyEyeMakeup\r\n3 Archery\r\n", r"class indices must be 1\.\.2, each once"),
        ("1 ApplyEyeMakeup\r\n1 Archery\r\n", r"line 2: '1 Archery' repeats an index"),
        ("1 ApplyEyeMakeup\r\nArchery\r\n", r"line 2: expected 'index ClassName'"),
    ],
)
def test_ucf101_class_index_errors(ucf, text, message):
    lists, videos = ucf
    write(lists / "classInd.txt", text)
    with pytest.raises(DataError, match=message):
        load_annotations(lists / "testlist01.txt", root=videos)


def test_ucf101_missing_files_split_and_subset_errors(ucf, tmp_path):
    lists, videos = ucf
    with pytest.raises(DataError, match=r"is the list of split 2, but split 1 was asked for"):
        load_annotations(lists / "trainlist02.txt", root=videos, split=1, subset="train")
    with pytest.raises(DataError, match=r"testlist01.txt: is a test list, given as training data; use trainlist01"):
        load_annotations(lists / "testlist01.txt", root=videos, subset="train")
    with pytest.raises(DataError, match=r"needs the split \(1, 2 or 3: data.split, --split\)"):
        load_annotations(lists, root=videos, subset="train")
    with pytest.raises(DataError, match=r"split 4 does not exist"):
        load_annotations(lists, root=videos, split=4, subset="train")
    with pytest.raises(DataError, match=r"needs the video folder \(UCF-101\) as root"):
        load_annotations(lists / "testlist01.txt")
    (lists / "testlist03.txt").unlink()
    with pytest.raises(DataError, match=r"ucfTrainTestlist: testlist03.txt not found"):
        load_annotations(lists, root=videos, split=3, subset="test")
    lone = write(tmp_path / "elsewhere" / "testlist01.txt", "Archery/v_Archery_g01_c01.avi\r\n")
    with pytest.raises(DataError, match=r"classInd.txt not found; UCF101's lists need the classInd.txt"):
        load_annotations(lone, root=videos, fmt="ucf101")


def test_hmdb51_train_and_test_videos_of_each_split(hmdb):
    splits, videos = hmdb
    for split, flags in HMDB_FLAGS.items():
        for subset, flag in (("train", "1"), ("test", "2")):
            ann = load_annotations(splits, root=videos, split=split, subset=subset)
            assert ann.fmt == "hmdb51"
            assert ann.class_names == ["brush_hair", "clap", "sword", "sword_exercise"]
            expected = [
                VideoRecord(videos / name / video, HMDB_LABELS[name])
                for name in ("brush_hair", "clap", "sword", "sword_exercise")
                for video, video_flag in zip(HMDB_VIDEOS[name], flags)
                if video_flag == flag
            ]
            assert ann.records == expected, (split, subset)


def test_hmdb51_records_written_out_for_split_1(hmdb):
    splits, videos = hmdb
    ann = load_annotations(splits, root=videos, split=1, subset="train")
    assert ann.records == [
        VideoRecord(videos / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
        VideoRecord(videos / "clap" / "#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi", 1),
        VideoRecord(videos / "sword" / "Sword_Fight_sword_f_cm_np2_le_bad_0.avi", 2),
        VideoRecord(videos / "sword_exercise" / "Kata_sword_exercise_f_cm_np1_fr_goo_0.avi", 3),
    ]


def test_hmdb51_errors(hmdb):
    splits, videos = hmdb
    (splits / "clap_test_split2.txt").unlink()
    with pytest.raises(DataError, match=r"clap_test_split2.txt is missing \(1 class\(es\) lack split 2\)"):
        load_annotations(splits, root=videos, split=2, subset="test")
    write(splits / "sword_test_split1.txt", "Duel_sword_f_nm_np2_ri_med_3.avi 1 \nSword_Fight.avi 3 \n")
    with pytest.raises(DataError, match=r"sword_test_split1.txt line 2: expected '<video>.avi <flag>'"):
        load_annotations(splits, root=videos, split=1, subset="train")
    with pytest.raises(DataError, match=r"reads the folder of split files"):
        load_annotations(splits / "sword_test_split3.txt", root=videos, fmt="hmdb51", split=3, subset="test")
    with pytest.raises(DataError, match=r"needs the split"):
        load_annotations(splits, root=videos, subset="test")
    for stale in splits.glob("*_test_split3.txt"):
        stale.unlink()
    with pytest.raises(DataError, match=r"no <class>_test_split3.txt files"):
        load_annotations(splits, root=videos, split=3, subset="test")


def test_detection_of_the_official_layouts(ucf, hmdb, tmp_path):
    lists, _ = ucf
    splits, _ = hmdb
    assert detect_format(lists / "trainlist01.txt") == "ucf101"
    assert detect_format(lists / "testlist03.txt") == "ucf101"
    assert detect_format(lists) == "ucf101"
    assert detect_format(splits) == "hmdb51"
    alone = write(tmp_path / "other" / "trainlist01.txt", "a.mp4 0\n")
    assert detect_format(alone) == "list"  # no classInd.txt beside it
    write(tmp_path / "classes" / "walk" / "a.mp4", "")
    write(tmp_path / "classes" / "classInd.txt", CLASS_IND)
    assert detect_format(tmp_path / "classes") == "folder"  # class folders win over a stray classInd.txt


def test_a_split_on_a_format_without_splits_is_an_error(tmp_path):
    listing = write(tmp_path / "train.txt", "a.mp4 0\n")
    assert load_annotations(listing, subset="train").records == [VideoRecord(tmp_path / "a.mp4", 0)]
    with pytest.raises(DataError, match=r"split 2 applies to the ucf101 and hmdb51 formats only"):
        load_annotations(listing, split=2)


def test_ucf101_recipe_reads_the_split_through_the_engine(ucf):
    lists, videos = ucf
    paths = [f"data.root={videos}", f"data.train={lists}", f"data.val={lists}"]
    data = load_config("ucf101_vast_tiny", paths).data
    assert (data.format, data.split) == ("ucf101", 1)
    assert [r.label for r in read_annotations(data, "train").records] == [0, 2, 3]
    assert [r.label for r in read_annotations(data, "val").records] == [0, 1, 2]
    data = load_config("ucf101_vast_tiny", [*paths, "data.split=3"]).data
    assert read_annotations(data, "val").records == [
        VideoRecord(videos / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi", 0),
        VideoRecord(videos / "Archery" / "v_Archery_g09_c04.avi", 1),
    ]


def test_ucf101_list_files_in_a_recipe_and_a_split_they_contradict(ucf):
    lists, videos = ucf
    files = [f"data.root={videos}", f"data.train={lists / 'trainlist02.txt'}", f"data.val={lists / 'testlist02.txt'}"]
    data = load_config("ucf101_vast_tiny", [*files, "data.split=2"]).data
    assert [r.label for r in read_annotations(data, "train").records] == [1, 3]
    assert [r.label for r in read_annotations(data, "val").records] == [3]
    data = load_config("ucf101_vast_tiny", [*files, "data.split=1"]).data
    with pytest.raises(DataError, match="is the list of split 2, but split 1 was asked for"):
        read_annotations(data, "train")


def test_hmdb51_recipe_reads_the_split_through_the_engine_and_eval(hmdb):
    splits, videos = hmdb
    config = load_config(
        "hmdb51_vast_tiny", [f"data.root={videos}", f"data.train={splits}", f"data.val={splits}", "data.split=2"]
    )
    assert config.data.format == "hmdb51"
    train = read_annotations(config.data, "train")
    assert [r.path.name for r in train.records] == [
        "Blonde_brush_hair_f_nm_np1_le_goo_2.avi",
        "Crowd_clap_f_cm_np1_ba_med_1.avi",
        "Fencing_sword_f_cm_np2_fr_goo_1.avi",
        "Drill_sword_exercise_u_cm_np1_ri_med_2.avi",
    ]
    # `vast eval` reads the run's test videos of the same split (no model is needed to choose them).
    run = LoadedRun(None, config, train.class_names, splits / "last.pt", "model")
    test = annotations_for_eval(run, None, None)
    assert [(r.path.name, r.label) for r in test.records] == [
        ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
        ("#20_Rhythm_clap_u_nm_np1_fr_goo_0.avi", 1),
        ("Sword_Fight_sword_f_cm_np2_le_bad_0.avi", 2),
        ("Kata_sword_exercise_f_cm_np1_fr_goo_0.avi", 3),
    ]


def test_recipe_split_must_be_an_official_one():
    with pytest.raises(ConfigError, match=r"data.split must be 1, 2 or 3"):
        load_config("hmdb51_vast_tiny", ["data.split=4"])


def test_data_check_takes_the_split_and_subset(hmdb, capsys):
    splits, videos = hmdb
    args = ["data", "check", str(splits), "--root", str(videos), "--split", "2", "--subset", "train", "--workers", "1"]
    assert main(args) == 1  # no video exists: each is listed as missing, none is decoded
    out = capsys.readouterr().out
    assert "4 of 4 videos are broken" in out and "brush_hair/Blonde_brush_hair_f_nm_np1_le_goo_2.avi" in out
