"""What `vast stream --overlay` writes: the video with the current top classes drawn on every frame,
and a timeline of class probabilities over the stream."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vast.streaming.recognizer import StreamUpdate

MIN_HEIGHT = 360  # smaller videos are enlarged (nearest neighbour) so that the labels stay legible


class OverlayWriter:
    """Writes frames with the latest update's top-``k`` labels and probabilities in a box at the top left.

    Frames before the first update show "waiting". Use as a context manager; the file is H.264 (MPEG-4
    Part 2 where this FFmpeg build has no libx264), yuv420p, at the source's frame rate.
    """

    def __init__(self, path: str | Path, fps: float | None, class_names: list[str], top_k: int = 3) -> None:
        self.path = Path(path)
        self.class_names = class_names
        self.top_k = top_k
        self.frames = 0
        self._rate = Fraction(fps or 25.0).limit_denominator(1001)
        self._container = av.open(str(self.path), mode="w")
        self._stream: av.VideoStream | None = None
        self._font: ImageFont.ImageFont | ImageFont.FreeTypeFont | None = None
        self._scale = 1

    def write(self, rgb: np.ndarray, update: StreamUpdate | None) -> None:
        if self._stream is None:
            self._start(rgb.shape[0], rgb.shape[1])
        image = Image.fromarray(self._enlarge(rgb))
        self._draw(image, update)
        frame = av.VideoFrame.from_image(image)
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def _start(self, height: int, width: int) -> None:
        self._scale = max(1, math.ceil(MIN_HEIGHT / height))
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=self._rate)
        # yuv420p needs even sizes: an odd row or column is cropped off.
        self._stream.height = (height * self._scale) // 2 * 2
        self._stream.width = (width * self._scale) // 2 * 2
        self._stream.pix_fmt = "yuv420p"
        self._font = _font(max(12, self._stream.height // 24))

    def _enlarge(self, rgb: np.ndarray) -> np.ndarray:
        if self._scale > 1:
            rgb = rgb.repeat(self._scale, axis=0).repeat(self._scale, axis=1)
        return np.ascontiguousarray(rgb[: self._stream.height, : self._stream.width])

    def _draw(self, image: Image.Image, update: StreamUpdate | None) -> None:
        lines = ["waiting for frames"]
        if update is not None:
            lines = [f"{name}  {100 * p:5.1f} %" for name, p in update.top(self.class_names, self.top_k)]
        draw = ImageDraw.Draw(image, "RGBA")
        pad = self._font.size // 2 if hasattr(self._font, "size") else 4
        boxes = [draw.textbbox((0, 0), line, font=self._font) for line in lines]
        line_height = max(b[3] - b[1] for b in boxes) + pad
        width = max(b[2] - b[0] for b in boxes) + 2 * pad
        draw.rectangle((0, 0, width, line_height * len(lines) + pad), fill=(0, 0, 0, 160))
        for row, line in enumerate(lines):
            colour = (255, 255, 80) if row == 0 and update is not None else (255, 255, 255)
            draw.text((pad, pad + row * line_height), line, font=self._font, fill=colour)

    def close(self) -> None:
        if self._stream is not None:
            self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> OverlayWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError):
        return ImageFont.load_default()


def timeline_path(overlay: str | Path) -> Path:
    """``clip.mp4`` -> ``clip.timeline.png``."""
    return Path(overlay).with_suffix(".timeline.png")


def plot_timeline(updates: list[StreamUpdate], class_names: list[str], path: str | Path, classes: int = 6) -> Path:
    """Probability against time of the ``classes`` classes that reached the highest probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=120)
    if updates:
        times = np.array([u.time for u in updates])
        probs = np.stack([u.probabilities.numpy() for u in updates])[:, : len(class_names)]
        for index in np.argsort(-probs.max(axis=0))[:classes]:
            ax.plot(times, probs[:, index], marker="." if len(updates) < 50 else None, label=class_names[index])
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set(xlabel="time (s)", ylabel="probability", ylim=(0, 1), title="class probabilities over the stream")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
