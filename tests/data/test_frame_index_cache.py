"""The cache of indexes by decoding: a file is decoded whole once, not once per decoder; in memory per
process, and on disk for other processes and later runs."""

import logging
import os
from pathlib import Path

import av
import numpy as np
import pytest

from vast.cli.main import main
from vast.data import decoding
from vast.data.decoding import FRAME_INDEX_CACHE, FrameIndexCache, PyAVDecoder
from vast.data.frame_index import default_folder


@pytest.fixture(autouse=True)
def empty_cache(monkeypatch):
    """An empty memory, and no folder on disk (the tests of the folder give one)."""
    monkeypatch.setenv("VAST_CACHE_DIR", "")
    FRAME_INDEX_CACHE.clear()
    yield
    FRAME_INDEX_CACHE.clear()


@pytest.fixture
def disk(tmp_path, monkeypatch) -> Path:
    """A cache folder of this test's own; the folder where the indexes go."""
    monkeypatch.setenv("VAST_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "frame-index"


@pytest.fixture
def index_builds(monkeypatch):
    """Counts the indexes built by decoding a file whole."""
    builds = []
    decode_index = PyAVDecoder._decode_index

    def counted(self):
        builds.append(self.path)
        return decode_index(self)

    monkeypatch.setattr(PyAVDecoder, "_decode_index", counted)
    return builds


def test_a_second_decoder_of_a_file_reuses_its_index(barcode_video, read_barcode_fn, index_builds):
    path, _ = barcode_video("clip.avi", 40, codec="mpeg4", gop=10)
    with PyAVDecoder(path) as first:
        expected = first.get_frames([3, 17, 33])
    with PyAVDecoder(path) as second:
        frames = second.get_frames([3, 17, 33])
        assert second.num_frames == 40
    assert index_builds == [path]
    assert [read_barcode_fn(f) for f in frames] == [3, 17, 33]
    assert (frames == expected).all()


def test_a_rewritten_file_is_indexed_again(barcode_video, read_barcode_fn, index_builds):
    path, _ = barcode_video("clip.avi", 40, codec="mpeg4", gop=10)
    with PyAVDecoder(path) as decoder:
        assert decoder.num_frames == 40
    barcode_video("clip.avi", 30, codec="mpeg4", gop=10)  # another size
    with PyAVDecoder(path) as decoder:
        assert decoder.num_frames == 30
        assert read_barcode_fn(decoder.get_frames([29])[0]) == 29
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # same size, newer
    with PyAVDecoder(path) as decoder:
        assert decoder.num_frames == 30
    assert len(index_builds) == 3


def test_the_bound_drops_the_least_recently_used(barcode_video, index_builds, monkeypatch):
    monkeypatch.setattr(FRAME_INDEX_CACHE, "max_entries", 2)
    a, b, c = (barcode_video(f"{name}.avi", 12, codec="mpeg4")[0] for name in "abc")
    for path in (a, b, a, c):  # a used after b: b is the oldest when c comes
        PyAVDecoder(path).close()
    assert len(FRAME_INDEX_CACHE) == 2
    PyAVDecoder(a).close()
    PyAVDecoder(c).close()
    assert index_builds == [a, b, c]
    PyAVDecoder(b).close()
    assert index_builds == [a, b, c, b]


def test_max_entries_0_keeps_none_in_memory(barcode_video, index_builds, monkeypatch):
    monkeypatch.setattr(FRAME_INDEX_CACHE, "max_entries", 0)
    path, _ = barcode_video("clip.avi", 12, codec="mpeg4")
    PyAVDecoder(path).close()
    PyAVDecoder(path).close()
    assert index_builds == [path, path]
    assert len(FRAME_INDEX_CACHE) == 0


def test_files_indexed_by_timestamps_are_not_cached(barcode_video, disk):
    path, _ = barcode_video("clip.mp4", 12)
    PyAVDecoder(path).close()
    assert len(FRAME_INDEX_CACHE) == 0 and not disk.exists()


def test_cached_arrays_are_read_only(barcode_video):
    path, _ = barcode_video("clip.avi", 12, codec="mpeg4")
    PyAVDecoder(path).close()
    (index,) = FRAME_INDEX_CACHE._entries.values()
    assert not index.stamps.flags.writeable
    assert isinstance(FRAME_INDEX_CACHE, FrameIndexCache) and decoding.FRAME_INDEX_CACHE is FRAME_INDEX_CACHE


def test_another_process_reads_the_index_from_disk(barcode_video, read_barcode_fn, index_builds, disk):
    path, _ = barcode_video("clip.avi", 40, codec="mpeg4", gop=10)
    PyAVDecoder(path).close()
    assert len(list(disk.glob("*.npy"))) == 1
    FRAME_INDEX_CACHE.clear()  # as a new process (a DataLoader worker, the next run) starts
    with PyAVDecoder(path) as video:
        assert video.num_frames == 40 and video._index.by_decoding
        assert [read_barcode_fn(f) for f in video.get_frames([33, 3, 17])] == [33, 3, 17]
    assert index_builds == [path]


def test_a_process_with_another_cache_object_shares_the_folder(barcode_video, index_builds, disk):
    path, _ = barcode_video("clip.avi", 24, codec="mpeg4", gop=8)
    PyAVDecoder(path).close()
    other = FrameIndexCache(folder=disk)
    kept = other.get(FrameIndexCache.key(path, 0))
    assert kept is not None and len(kept.stamps) == 24 and kept.by_decoding and kept.named
    assert index_builds == [path]


def test_an_unreadable_index_file_is_rebuilt(barcode_video, read_barcode_fn, index_builds, disk):
    path, _ = barcode_video("clip.avi", 40, codec="mpeg4", gop=10)
    PyAVDecoder(path).close()
    (stored,) = disk.glob("*.npy")
    stored.write_bytes(stored.read_bytes()[:50])  # cut short, as by a full disk
    FRAME_INDEX_CACHE.clear()
    with PyAVDecoder(path) as video:
        assert [read_barcode_fn(f) for f in video.get_frames([39, 0, 21])] == [39, 0, 21]
    assert index_builds == [path, path]
    FRAME_INDEX_CACHE.clear()
    PyAVDecoder(path).close()  # the rebuilt file was written whole
    assert index_builds == [path, path] and not list(disk.glob("*.tmp"))


def test_a_rewritten_file_is_not_read_through_its_old_index_on_disk(barcode_video, read_barcode_fn, disk):
    path, _ = barcode_video("clip.avi", 40, codec="mpeg4", gop=10)
    PyAVDecoder(path).close()
    barcode_video("clip.avi", 30, codec="mpeg4", gop=10)
    FRAME_INDEX_CACHE.clear()
    with PyAVDecoder(path) as video:
        assert video.num_frames == 30
        assert read_barcode_fn(video.get_frames([29])[0]) == 29
    assert len(list(disk.glob("*.npy"))) == 2


def test_another_ffmpeg_builds_its_own_index(barcode_video, index_builds, disk, monkeypatch):
    path, _ = barcode_video("clip.avi", 12, codec="mpeg4")
    PyAVDecoder(path).close()
    monkeypatch.setattr(av, "ffmpeg_version_info", "another FFmpeg")
    FRAME_INDEX_CACHE.clear()
    PyAVDecoder(path).close()
    assert index_builds == [path, path]


def test_an_unwritable_folder_is_reported_once_and_memory_still_works(
    barcode_video, read_barcode_fn, index_builds, tmp_path, monkeypatch, caplog
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("VAST_CACHE_DIR", str(blocker))
    a, _ = barcode_video("a.avi", 12, codec="mpeg4")
    b, _ = barcode_video("b.avi", 12, codec="mpeg4")
    with caplog.at_level(logging.WARNING, logger="vast.data.frame_index"):
        for path in (a, b, a):
            with PyAVDecoder(path) as video:
                assert read_barcode_fn(video.get_frames([11])[0]) == 11
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(blocker) in warnings[0] and "VAST_CACHE_DIR" in warnings[0]
    assert index_builds == [a, b]


def test_the_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("VAST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_folder() == tmp_path / "xdg" / "vast" / "frame-index"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_folder() == tmp_path / "home" / ".cache" / "vast" / "frame-index"
    monkeypatch.setenv("VAST_CACHE_DIR", str(tmp_path / "mine"))
    assert FRAME_INDEX_CACHE.folder == tmp_path / "mine" / "frame-index"
    monkeypatch.setenv("VAST_CACHE_DIR", "")
    assert FRAME_INDEX_CACHE.folder is None and FrameIndexCache(folder=tmp_path).folder == tmp_path


def test_stored_arrays_equal_the_built_ones(barcode_video, disk):
    path, _ = barcode_video("clip.avi", 30, codec="mpeg4", gop=7)
    PyAVDecoder(path).close()
    built = FRAME_INDEX_CACHE.get(FrameIndexCache.key(path, 0))
    FRAME_INDEX_CACHE.clear()
    loaded = FRAME_INDEX_CACHE.get(FrameIndexCache.key(path, 0))
    for name in ("stamps", "keyframes", "seek_stamps"):
        assert np.array_equal(getattr(built, name), getattr(loaded, name)), name
    assert (loaded.by_decoding, loaded.named) == (built.by_decoding, built.named)
    assert loaded.keyframes[0] == 0 and len(loaded.keyframes) > 1 and len(loaded.stamps) == 30


@pytest.mark.parametrize("index", [True, False])
def test_vast_data_check_index_fills_the_store(barcode_video, index_builds, disk, capsys, index):
    avis = [barcode_video(f"{name}.avi", 20, codec="mpeg4")[0] for name in "ab"]
    mp4 = barcode_video("c.mp4", 20)[0]
    listing = mp4.parent / "listing.txt"
    listing.write_text("a.avi 0\nb.avi 1\nc.mp4 0\n")
    flags = ["--index"] if index else []
    assert main(["data", "check", str(listing), "--workers", "1", *flags]) == 0
    out = capsys.readouterr().out
    assert ("frame indexes kept in" in out) == index
    assert len(list(disk.glob("*.npy"))) == (2 if index else 0)  # the MP4 needs none
    assert index_builds == (avis if index else [])
    FRAME_INDEX_CACHE.clear()  # as the training process that opens them next
    built_by_check = len(index_builds)
    for path in avis:
        PyAVDecoder(path).close()
    assert index_builds[built_by_check:] == ([] if index else avis)
