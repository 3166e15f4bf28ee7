"""The per-process cache of indexes by decoding: a file is decoded whole once, not once per decoder."""

import os

import pytest

from vast.data import decoding
from vast.data.decoding import FRAME_INDEX_CACHE, FrameIndexCache, PyAVDecoder


@pytest.fixture(autouse=True)
def empty_cache():
    FRAME_INDEX_CACHE.clear()
    yield
    FRAME_INDEX_CACHE.clear()


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


def test_max_entries_0_turns_the_cache_off(barcode_video, index_builds, monkeypatch):
    monkeypatch.setattr(FRAME_INDEX_CACHE, "max_entries", 0)
    path, _ = barcode_video("clip.avi", 12, codec="mpeg4")
    PyAVDecoder(path).close()
    PyAVDecoder(path).close()
    assert index_builds == [path, path]
    assert len(FRAME_INDEX_CACHE) == 0


def test_files_indexed_by_timestamps_are_not_cached(barcode_video):
    path, _ = barcode_video("clip.mp4", 12)
    PyAVDecoder(path).close()
    assert len(FRAME_INDEX_CACHE) == 0


def test_cached_arrays_are_read_only(barcode_video):
    path, _ = barcode_video("clip.avi", 12, codec="mpeg4")
    PyAVDecoder(path).close()
    (index,) = FRAME_INDEX_CACHE._entries.values()
    assert not index.stamps.flags.writeable
    assert isinstance(FRAME_INDEX_CACHE, FrameIndexCache) and decoding.FRAME_INDEX_CACHE is FRAME_INDEX_CACHE
