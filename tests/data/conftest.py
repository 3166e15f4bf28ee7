"""Fixtures of the data tests: real small video files in tmp_path. Every frame of a barcode video
carries its own index, so a test can tell which frame it got back without trusting the decoder.

The tests run in importlib mode (no sibling imports), so helpers reach them as fixtures."""

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vast.data.encoding import write_video

BITS = 16  # two rows of 8 blocks: frame indices up to 65535


def barcode_frame(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """A uint8 (H, W, 3) frame whose top two rows of 8x8 blocks spell ``index`` in binary."""
    frame = np.full((height, width, 3), 90 + (index % 8) * 10, dtype=np.uint8)
    block = width // 8
    for bit in range(BITS):
        row, col = divmod(bit, 8)
        value = 235 if (index >> bit) & 1 else 20
        frame[row * block : (row + 1) * block, col * block : (col + 1) * block] = value
    return frame


def read_barcode(frame) -> int:
    """The index spelled by a decoded frame (H, W, 3), values on a 0..255 or 0..1 scale."""
    frame = np.asarray(frame, dtype=np.float64)
    scale = 255.0 if frame.max() > 1.5 else 1.0
    block = frame.shape[1] // 8
    index = 0
    for bit in range(BITS):
        row, col = divmod(bit, 8)
        # The middle of each block: away from the blurring of block edges by the codec.
        inner = frame[row * block + 2 : (row + 1) * block - 2, col * block + 2 : (col + 1) * block - 2]
        if inner.mean() > 128 / 255 * scale:
            index |= 1 << bit
    return index


def write_barcode_video(path: Path, num_frames: int, **kwargs) -> np.ndarray:
    """Write frames 0..num_frames-1 as a video; returns the frames written, (T, H, W, 3)."""
    size = kwargs.pop("size", (48, 64))
    frames = np.stack([barcode_frame(i, *size) for i in range(num_frames)])
    kwargs.setdefault("crf", 12)
    write_video(path, frames, **kwargs)
    return frames


def make_broken_files(folder: Path) -> dict[str, Path]:
    """One real file of each broken kind, keyed by the category `vast data check` should give it."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    good = folder / "good.mp4"
    write_barcode_video(good, 12)
    data = good.read_bytes()
    files["truncated"] = folder / "truncated.mp4"
    files["truncated"].write_bytes(data[: len(data) // 2])

    files["zero-length"] = folder / "empty.mp4"
    files["zero-length"].write_bytes(b"")

    files["not a video"] = folder / "notes.mp4"
    files["not a video"].write_text("these are meeting notes, not a video\n" * 20)

    files["audio-only"] = folder / "speech.mp4"
    with av.open(str(files["audio-only"]), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))

    # MP4 drops a track without samples; AVI keeps a video stream that has no frames.
    files["no frames"] = folder / "blank.avi"
    with av.open(str(files["no frames"]), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()

    files["missing file"] = folder / "never_written.mp4"
    return files


@pytest.fixture(scope="session")
def read_barcode_fn():
    """``read_barcode(frame) -> int``: the index a decoded frame (H, W, 3) spells."""
    return read_barcode


@pytest.fixture(scope="session")
def barcode_frame_fn():
    """``barcode_frame(index, height=48, width=64) -> uint8 (H, W, 3)``."""
    return barcode_frame


@pytest.fixture
def barcode_video(tmp_path):
    """``make(name, num_frames, **write_video_kwargs) -> (path, frames)``: frame i shows barcode i."""

    def make(name: str, num_frames: int, **kwargs):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, write_barcode_video(path, num_frames, **kwargs)

    return make


@pytest.fixture
def broken_files(tmp_path) -> dict[str, Path]:
    """One real file per broken-video category (see make_broken_files)."""
    return make_broken_files(tmp_path / "broken")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Data tests push tiny tensors: fanning each op out to threads costs more than it saves (and
    much more when the other core is busy), so run them on one thread, as DataLoader workers do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
