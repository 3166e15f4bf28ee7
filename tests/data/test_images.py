"""Image folders read as one-frame clips: real image files written with PIL and read back with PIL as
the reference (for lossless formats, the written pixels themselves)."""

import numpy as np
import pytest
from PIL import Image

from vast.cli.main import main
from vast.data.annotations import Annotations, VideoRecord, load_annotations
from vast.data.dataset import BrokenVideo, BrokenVideoLog, VideoDataset, collate_videos
from vast.data.decoding import ImageDecoder, check_video, open_video
from vast.data.sampling import TSNSampler
from vast.data.transforms import build_eval_transform
from vast.errors import DataError


def pattern(seed: int, height: int = 40, width: int = 56) -> np.ndarray:
    """A uint8 (H, W, 3) image: coloured blocks over a gradient, different for every seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1) % 256
    period = int(rng.integers(4, 10))
    blocks = ((y // period + x // period) % 2)[..., None] * rng.integers(0, 120, 3)
    return ((image + blocks) % 256).astype(np.uint8)


def save(path, array: np.ndarray, fmt: str | None = None, mode: str | None = None, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(path, format=fmt, **options)


def pil_rgb(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_an_imagenet_style_folder_lists_its_images(tmp_path):
    root = tmp_path / "train"
    names = {
        "n01440764": ["a.JPEG", "b.jpg", "c.PNG"],
        "n01443537": ["d.jpeg", "e.webp", "f.Jpeg"],
    }
    for label, (class_name, files) in enumerate(names.items()):
        for number, name in enumerate(files):
            save(root / class_name / name, pattern(label * 10 + number), fmt="WEBP" if name.endswith("webp") else None)
    (root / "n01440764" / "readme.txt").write_text("ignored")
    (root / "n01443537" / "Thumbs.db").write_bytes(b"ignored")
    ann = load_annotations(root)
    assert ann.fmt == "folder" and ann.class_names == ["n01440764", "n01443537"]
    assert ann.records == [
        VideoRecord(root / "n01440764" / "a.JPEG", 0),
        VideoRecord(root / "n01440764" / "b.jpg", 0),
        VideoRecord(root / "n01440764" / "c.PNG", 0),
        VideoRecord(root / "n01443537" / "d.jpeg", 1),
        VideoRecord(root / "n01443537" / "e.webp", 1),
        VideoRecord(root / "n01443537" / "f.Jpeg", 1),
    ]


def test_a_folder_mixing_images_and_videos_is_one_clear_error(tmp_path):
    save(tmp_path / "data" / "cats" / "a.jpg", pattern(0))
    (tmp_path / "data" / "dogs").mkdir()
    (tmp_path / "data" / "dogs" / "b.mp4").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_annotations(tmp_path / "data")
    message = str(info.value)
    assert "\n" not in message
    assert "mix 1 images (e.g. cats/a.jpg) and 1 videos (e.g. dogs/b.mp4)" in message
    assert "keep one kind" in message


def test_a_folder_without_images_or_videos_says_what_it_found(tmp_path):
    (tmp_path / "data" / "cats").mkdir(parents=True)
    (tmp_path / "data" / "cats" / "a.tif").write_bytes(b"II*\x00")
    (tmp_path / "data" / "cats" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images \(.jpg .jpeg .png .webp\); found only .tif, .txt; check"):
        load_annotations(tmp_path / "data")


def test_images_directly_in_the_folder_ask_for_class_folders(tmp_path):
    save(tmp_path / "val" / "ILSVRC2012_val_00000001.JPEG", pattern(0))
    with pytest.raises(DataError, match="no class folders; put each class's videos or images in a folder"):
        load_annotations(tmp_path / "val")


def _sixteen_bit(path):
    values = np.array([[0x1234, 0xFFFF, 0x00FF], [0x8000, 0x7F80, 0x0100]], dtype=np.uint16)
    Image.fromarray(values).save(path)  # a 16-bit greyscale PNG
    high_bytes = np.array([[0x12, 0xFF, 0x00], [0x80, 0x7F, 0x01]], dtype=np.uint8)  # by hand
    return np.repeat(high_bytes[..., None], 3, axis=-1)


def _written(kind, path):
    """Write one image of ``kind`` at ``path``; return the exact RGB pixels, or None (compare with PIL)."""
    image = pattern(3)
    if kind == "jpeg":
        save(path, image, quality=95)
    elif kind == "grey jpeg":
        save(path, image, mode="L", quality=95)
    elif kind == "cmyk jpeg":
        save(path, image, mode="CMYK", quality=95)
    elif kind == "png":
        save(path, image)
        return image
    elif kind == "rgba png":
        rgba = np.concatenate([image, np.full((*image.shape[:2], 1), 77, np.uint8)], axis=-1)
        save(path, rgba)
        return image  # the alpha channel is dropped
    elif kind == "palette png":
        save(path, image, mode="P")
    elif kind == "16-bit png":
        return _sixteen_bit(path)
    elif kind == "lossless webp":
        save(path, image, fmt="WEBP", lossless=True)
        return image
    elif kind == "png named .JPEG":
        save(path, image, fmt="PNG")
        return image
    return None


KINDS = {
    "jpeg": "a.JPEG",
    "grey jpeg": "g.jpg",
    "cmyk jpeg": "k.jpeg",
    "png": "p.png",
    "rgba png": "r.png",
    "palette png": "q.png",
    "16-bit png": "s.png",
    "lossless webp": "w.webp",
    "png named .JPEG": "n.JPEG",  # ImageNet has one: the format is read from the bytes
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_image_decodes_to_the_pixels_pil_reads(tmp_path, kind):
    path = tmp_path / KINDS[kind]
    exact = _written(kind, path)
    with open_video(path) as video:
        assert isinstance(video, ImageDecoder) and video.num_frames == 1 and video.fps == 0.0
        frames = video.get_frames([0])
    assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] == 1 and frames.shape[-1] == 3
    if exact is not None:
        np.testing.assert_array_equal(frames[0], exact)
    else:  # lossy or converted: PIL's decoding, up to the rounding of another libjpeg build
        reference = pil_rgb(path)
        assert frames[0].shape == reference.shape
        assert np.abs(frames[0].astype(int) - reference).max() <= 2


def test_an_image_is_a_one_frame_clip_in_the_dataset(tmp_path):
    path = tmp_path / "cls" / "x.png"
    written = pattern(5, height=36, width=44)
    save(path, written)
    annotations = Annotations([VideoRecord(path, 2)], ["a", "b", "c"])
    expected = written.transpose(2, 0, 1)[:, None] / 255.0  # (C, T=1, H, W) in [0, 1]

    clip, label, index = VideoDataset(annotations, TSNSampler(1, training=True))[0]
    assert (label, index) == (2, 0) and tuple(clip.shape) == (3, 1, 36, 44)
    np.testing.assert_allclose(clip.numpy(), expected, atol=1e-6)

    clip = VideoDataset(annotations, TSNSampler(4))[0][0]  # T frames of one image: the image T times
    np.testing.assert_allclose(clip.numpy(), np.repeat(expected, 4, axis=1), atol=1e-6)

    eval_clip = VideoDataset(annotations, TSNSampler(1), build_eval_transform(32, short_side=32))[0][0]
    assert tuple(eval_clip.shape) == (3, 1, 32, 32)


@pytest.fixture
def broken_images(tmp_path):
    """One real broken image file per category, keyed by the category; and a good one."""
    folder = tmp_path / "broken"
    save(folder / "good.JPEG", pattern(0))
    save(folder / "whole.png", pattern(1))
    jpeg, png = (folder / "good.JPEG").read_bytes(), (folder / "whole.png").read_bytes()
    files = {
        "truncated": folder / "cut.JPEG",
        "truncated png": folder / "cut.png",
        "zero-length": folder / "empty.jpg",
        "not an image": folder / "notes.jpg",
        "missing file": folder / "never_written.png",
    }
    files["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    files["truncated png"].write_bytes(png[: len(png) // 2])
    files["zero-length"].write_bytes(b"")
    files["not an image"].write_text("these are meeting notes, not a photo\n" * 20)
    return folder / "good.JPEG", files


def test_check_video_names_what_is_wrong_with_an_image(broken_images):
    good, files = broken_images
    assert check_video(good) is None
    for category, path in files.items():
        problem = check_video(path)
        assert problem is not None and problem.category == category.removesuffix(" png"), (path, problem)
        assert problem.reason and "\n" not in problem.reason and ".cpp" not in problem.reason


def test_broken_images_are_skipped_counted_and_never_replaced(broken_images):
    good, files = broken_images
    records = [VideoRecord(good, 0), VideoRecord(files["truncated"], 1), VideoRecord(good, 1)]
    records.append(VideoRecord(files["not an image"], 0))
    dataset = VideoDataset(Annotations(records, ["a", "b"]), TSNSampler(1, training=True))
    log, seen = BrokenVideoLog(), []
    for batch in map(collate_videos, ([dataset[0], dataset[1]], [dataset[2], dataset[3]])):
        seen += batch.indices.tolist()
        log.add(batch.broken)
    assert seen == [0, 2]
    assert [(b.index, b.category) for b in log.records] == [(1, "truncated"), (3, "not an image")]
    assert isinstance(dataset[3], BrokenVideo)
    dataset.on_error = "raise"
    with pytest.raises(DataError, match=r"notes\.jpg: not an image \(Unsupported image file"):
        dataset[3]


def test_vast_data_check_lists_a_corrupt_image_in_a_class_folder(tmp_path, capsys):
    root = tmp_path / "train"
    for number in range(3):
        save(root / "cats" / f"{number}.JPEG", pattern(number))
    assert main(["data", "check", str(root), "--workers", "1"]) == 0
    data = (root / "cats" / "1.JPEG").read_bytes()
    (root / "cats" / "1.JPEG").write_bytes(data[: len(data) // 3])
    capsys.readouterr()
    assert main(["data", "check", str(root), "--workers", "1"]) == 1
    rows = [line for line in capsys.readouterr().out.splitlines() if "1.JPEG" in line]
    assert len(rows) == 1 and rows[0].split()[:2] == ["cats/1.JPEG", "truncated"]
