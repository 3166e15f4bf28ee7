"""This library's decoder against a baseline revision's, torchcodec and decord, on the real-world corpus
(``decoder_corpus.py`` beside this script), in one run:

* frame-exactness: for fixed requests (first, last, a sorted sparse set, an unsorted set, a repeated
  index, a TSN clip), each in a new reader, how many returned frames are not ffmpeg's frame of their
  index (mean absolute difference above the corpus tolerance), and the worst index offset found by
  matching each returned frame to ffmpeg's frames around it; also each reader's frame count;
* speed: 8-frame TSN training clips per second of wall time, a new reader per clip (as a data set
  opens them), and the median CPU time per clip. The readers take turns in rounds on each file, so a
  busy spell of the machine hits them alike. This library's decoder is timed as a large data set
  meets it, where a file is opened once per epoch and its index is not in the process's memory: in
  the first epoch (no index kept anywhere: a file indexed by decoding is decoded whole at every
  opening) and in later ones (its index read from the on-disk store the first epoch filled).

torchcodec and decord are optional (``pip install -e '.[bench-decoders]'``); a reader that cannot be
imported gets "not installed" in its column. ``--baseline none`` leaves the baseline out.

    PYTHONPATH=src python benchmarks/compare_decoders.py [--clips 80] [--rounds 4] [--baseline main]
        [--files NAME ...] [--folder CORPUS_CACHE]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import torch

from decoder_corpus import CORPUS, TOLERANCE, WEB, Corpus, CorpusUnavailable, frame_difference
from revision_decoder import revision_pyav_decoder
from vast.bench.machine import machine_info
from vast.data.decoding import FRAME_INDEX_CACHE, PyAVDecoder
from vast.data.sampling import TSNSampler

REPO = Path(__file__).resolve().parents[1]
THIS = "vast (this tree)"
FIRST_EPOCH = "vast, first epoch"
NOT_INSTALLED = "not installed"
WINDOW = 8  # returned frames are matched to ffmpeg's frames this many indices either side
SEGMENTS = 8  # frames per TSN clip


class Reader(Protocol):
    """What the benchmark asks of every decoder: a frame count and frames as uint8 (N, H, W, 3)."""

    @property
    def num_frames(self) -> int: ...

    def get_frames(self, indices: Sequence[int]) -> np.ndarray: ...

    def close(self) -> None: ...


Opener = Callable[[Path], Reader]


class TorchCodecReader:
    """torchcodec's VideoDecoder in exact seek mode (frame ``i`` from a scan of the file, as ours)."""

    def __init__(self, path: Path) -> None:
        from torchcodec.decoders import VideoDecoder

        # One FFmpeg thread, NHWC: what PyAVDecoder does by default inside a DataLoader worker.
        self._decoder = VideoDecoder(str(path), seek_mode="exact", dimension_order="NHWC", num_ffmpeg_threads=1)

    @property
    def num_frames(self) -> int:
        return len(self._decoder)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        return self._decoder.get_frames_at([int(i) for i in indices]).data.numpy()

    def close(self) -> None:
        del self._decoder  # it has no close(); dropping it frees the FFmpeg context


class DecordReader:
    """decord's VideoReader on the CPU."""

    def __init__(self, path: Path) -> None:
        import decord

        # One thread (decord's default, 0, takes one per core): the same footing as the others.
        self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)

    @property
    def num_frames(self) -> int:
        return len(self._reader)

    def get_frames(self, indices: Sequence[int]) -> np.ndarray:
        return self._reader.get_batch([int(i) for i in indices]).asnumpy()

    def close(self) -> None:
        del self._reader


def vast_opener(store: Path | None) -> Opener:
    """This tree's decoder as a data set of many files opens it: no index in the process's memory (a
    file comes back once per epoch, long after the memory dropped it); ``store``: the on-disk index
    folder (``None``: none, as in the first epoch)."""

    def open_video(path: Path) -> Reader:
        FRAME_INDEX_CACHE.clear()
        FRAME_INDEX_CACHE.folder = store
        return PyAVDecoder(path)

    return open_video


def baseline_decoder(revision: str, folder: Path) -> Opener:
    """``PyAVDecoder`` of the git ``revision`` (:mod:`revision_decoder`), opened as this tree's is:
    no index in the process's memory, the on-disk store (a folder of its own) filled by the untimed
    clip. Without that, a baseline that keeps indexes too would find them in memory, 20 clips in a row,
    and this tree's would be timed against an advantage no large data set has."""
    decoder = revision_pyav_decoder(revision, folder)
    store = folder / "frame-index-baseline"

    def open_video(path: Path) -> Reader:
        FRAME_INDEX_CACHE.clear()
        FRAME_INDEX_CACHE.folder = store
        return decoder(path)

    return open_video


def optional_reader(module: str, opener: Opener) -> Opener | str:
    """``opener`` when ``module`` imports, else why not (the column's text)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return NOT_INSTALLED
    except Exception as exc:  # a wheel built for another torch or FFmpeg fails with other errors
        return f"fails to import ({type(exc).__name__})"
    return opener


def readers(baseline: str, folder: Path) -> dict[str, Opener | str]:
    """Every column: an opener, or the reason the reader is not measured."""
    columns: dict[str, Opener | str] = {THIS: vast_opener(folder / "frame-index"), FIRST_EPOCH: vast_opener(None)}
    if baseline != "none":
        columns[f"vast@{baseline}"] = baseline_decoder(baseline, folder)
    columns["torchcodec"] = optional_reader("torchcodec.decoders", TorchCodecReader)
    columns["decord"] = optional_reader("decord", DecordReader)
    return columns


# --- frame-exactness -------------------------------------------------------------------------------


@dataclass
class Exactness:
    """One reader's answers on one file, against ffmpeg's frames."""

    num_frames: int | None = None
    asked: int = 0
    differ: int = 0
    worst_offset: int = 0
    failed: int = 0
    first_error: str = ""


def exactness_requests(count: int) -> dict[str, list[int]]:
    """The fixed requests for a file of ``count`` frames (ffmpeg's count), the same for every reader."""
    rng = np.random.default_rng(count)
    last, size = count - 1, min(8, count)
    return {
        "first": [0],
        "last": [last],
        "sorted": sorted(rng.choice(count, size, replace=False).tolist()),
        "unsorted": rng.choice(count, size, replace=False).tolist(),
        "repeated": [count // 3, count // 3, last, count // 3],
        "tsn": TSNSampler(SEGMENTS, training=True).sample(count, rng)[0].tolist(),
    }


def offset(frame: np.ndarray, index: int, reference: np.ndarray) -> int:
    """Which of ffmpeg's frames within :data:`WINDOW` of ``index`` ``frame`` is, as an offset from it.

    A reader's colour conversion can differ slightly everywhere, so the frame at ``index`` counts as
    the match unless another is closer by more than the tolerance; among equally close frames (a
    still scene) the nearest index wins.
    """
    here = frame_difference(frame, reference[index])
    best, best_gap = 0, here
    around = range(max(index - WINDOW, 0), min(index + WINDOW + 1, len(reference)))
    for other in sorted(around, key=lambda o: abs(o - index)):
        gap = frame_difference(frame, reference[other])
        if gap < best_gap:
            best, best_gap = other - index, gap
    return best if best_gap + TOLERANCE < here else 0


def check_exactness(opener: Opener, path: Path, reference: np.ndarray) -> Exactness:
    """Each request in a new reader (as a data set opens them), every returned frame checked."""
    result = Exactness()
    for indices in exactness_requests(len(reference)).values():
        result.asked += len(indices)
        try:
            with_reader(opener, path, lambda reader, i=indices: _check_request(reader, i, reference, result))
        except Exception as exc:  # a reader that cannot serve a request is reported, not fatal
            result.failed += 1
            result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
    return result


def _check_request(reader: Reader, indices: list[int], reference: np.ndarray, result: Exactness) -> None:
    result.num_frames = reader.num_frames
    frames = reader.get_frames(indices)
    result.differ += len(indices) - len(frames)  # frames not returned are not ffmpeg's either
    for frame, index in zip(frames, indices):
        if frame.shape != reference[index].shape:
            result.differ += 1
            continue
        result.differ += frame_difference(frame, reference[index]) > TOLERANCE
        result.worst_offset = max(result.worst_offset, offset(frame, index, reference), key=abs)


def with_reader(opener: Opener, path: Path, use: Callable[[Reader], object]) -> object:
    reader = opener(path)
    try:
        return use(reader)
    finally:
        reader.close()


# --- speed ----------------------------------------------------------------------------------------


@dataclass
class Speed:
    """One reader's TSN clips on one file: wall seconds, CPU seconds per clip, the error that stopped it."""

    wall: float = 0.0
    cpu: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def clips_per_second(self) -> float | None:
        return len(self.cpu) / self.wall if self.cpu and not self.error else None


def tsn_clip(opener: Opener, path: Path, rng: np.random.Generator) -> None:
    """Open, sample 8 TSN training frames from the reader's own frame count, decode, close."""
    sampler = TSNSampler(SEGMENTS, training=True)
    with_reader(opener, path, lambda reader: reader.get_frames(sampler.sample(reader.num_frames, rng)[0]))


def time_clips(opener: Opener, path: Path, count: int, seed: int, speed: Speed) -> None:
    """Add ``count`` clips to ``speed``; the seed gives every reader the same clips where the frame counts agree."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(count):
        began = time.process_time()  # all threads of the process: a reader's own threads count too
        tsn_clip(opener, path, rng)
        speed.cpu.append(time.process_time() - began)
    speed.wall += time.perf_counter() - start


def measure_speed(columns: dict[str, Opener], path: Path, clips: int, rounds: int) -> dict[str, Speed]:
    """Each reader's clips on ``path``, the readers taking turns round by round."""
    speeds = {label: Speed() for label in columns}
    for label, opener in columns.items():  # page cache, index store and lazy imports warm, untimed
        _guard(speeds[label], partial(tsn_clip, opener, path, np.random.default_rng(0)))
    per_round = max(1, clips // rounds)
    for number in range(rounds):
        for label, opener in columns.items():
            if not speeds[label].error:
                clips_of = partial(time_clips, opener, path, per_round, number, speeds[label])
                _guard(speeds[label], clips_of)
    return speeds


def _guard(speed: Speed, run: Callable[[], object]) -> None:
    try:
        run()
    except Exception as exc:  # one reader failing on one file must not end the run
        speed.error = f"{type(exc).__name__}: {exc}"


# --- report ---------------------------------------------------------------------------------------


@dataclass
class Results:
    """Everything one run measured, per corpus file and reader (column label)."""

    labels: list[str]
    missing: dict[str, str]  # label -> why the reader is not measured
    frame_counts: dict[str, int] = field(default_factory=dict)  # ffmpeg's
    exact: dict[str, dict[str, Exactness]] = field(default_factory=dict)
    speeds: dict[str, dict[str, Speed]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    load_before: str = ""

    def rows(self, measures: dict[str, dict[str, object]], show: Callable[[object], str]) -> dict[str, list[str]]:
        """``show`` of each reader's result per file, or why the reader has none."""
        return {
            name: [show(per_reader[label]) if label in per_reader else self.missing[label] for label in self.labels]
            for name, per_reader in measures.items()
        }


def table(title: str, labels: list[str], rows: dict[str, list[str]]) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(["file", *labels]) + " |", "|---" * (len(labels) + 1) + "|"]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows.items()]
    return "\n".join(lines) + "\n"


def differ_cell(result: Exactness) -> str:
    failed = f", {result.failed} of {len(exactness_requests(1))} requests failed" if result.failed else ""
    return f"{result.differ} / {result.asked}{failed}"


def offset_cell(result: Exactness) -> str:
    return f"{result.worst_offset:+d}" + ("*" if abs(result.worst_offset) == WINDOW else "")


def clips_cell(speed: Speed) -> str:
    return "error" if speed.error else f"{speed.clips_per_second:.1f}"


def cpu_cell(speed: Speed) -> str:
    return "error" if speed.error else f"{1000 * float(np.median(speed.cpu)):.1f}"


def report(results: Results, clips: int, rounds: int, baseline: str) -> str:
    """The tables, the machine and the load, as markdown."""
    out = [f"Machine: {machine_info(torch.device('cpu'))}", f"Decoders: {versions()}", ""]
    out.append(f"Load average (1, 5, 15 min) before: {results.load_before}, after: {load()}\n")
    counted = {f"{name} ({results.frame_counts[name]})": row for name, row in results.exact.items()}
    timed = f"{max(1, clips // rounds) * rounds} clips per reader and file, {rounds} round{'s' if rounds > 1 else ''}"
    tables = [
        (f"Frames not ffmpeg's (mean abs difference > {TOLERANCE}), of those asked", results.exact, differ_cell),
        (
            f"Worst index offset (returned frames matched to ffmpeg's within ±{WINDOW}; *: maybe further)",
            results.exact,
            offset_cell,
        ),
        ("Frame count (ffmpeg's in brackets)", counted, lambda r: "-" if r.num_frames is None else str(r.num_frames)),
        (f"8-frame TSN clips per second, a new reader per clip ({timed})", results.speeds, clips_cell),
        ("CPU ms per clip (median)", results.speeds, cpu_cell),
    ]
    out += [table(title, results.labels, results.rows(measures, show)) for title, measures, show in tables]
    return "\n".join(out + ratio_lines(results.speeds, baseline) + notes(results))


def geometric_mean_ratio(
    speeds: dict[str, dict[str, Speed]], baseline: str, label: str = THIS, files: Sequence[str] | None = None
) -> tuple[float, int] | None:
    """The geometric mean over ``files`` (default all) of ``label``'s clips/s over the baseline's, and
    the file count."""
    logs = []
    for name, per_reader in speeds.items():
        if files is not None and name not in files:
            continue
        ours, theirs = per_reader[label].clips_per_second, per_reader[baseline].clips_per_second
        if ours and theirs:
            logs.append(math.log(ours / theirs))
    return (math.exp(sum(logs) / len(logs)), len(logs)) if logs else None


# The corpus before AV1 came to it, and the web codecs, apart: a speed-up or loss on one is not hidden
# in the other's mean.
FILE_GROUPS = {"the files before AV1": [n for n in CORPUS if n not in WEB], "the AV1 and VP9 files": list(WEB)}


def ratio_lines(speeds: dict[str, dict[str, Speed]], baseline: str) -> list[str]:
    if baseline == "none":
        return []
    lines = []  # this tree against the baseline, both opened alike (later epochs: indexes on disk)
    for group, files in FILE_GROUPS.items():
        ratio = geometric_mean_ratio(speeds, f"vast@{baseline}", THIS, files)
        if ratio is None:
            lines.append(f"No file of {group} has clips/s for both {THIS} and vast@{baseline}.\n")
            continue
        value, count = ratio
        verdict = "within 5 %" if value >= 0.95 else "more than 5 % slower"
        mean = f"geometric mean over {count} files: {value:.3f} ({verdict})"
        lines.append(f"Clips/s of {THIS} over vast@{baseline}, {group}, {mean}\n")
    return lines


def notes(results: Results) -> list[str]:
    """The errors behind "failed" and "error" cells, and the files that could not be made."""
    lines = [
        f"- {name}, {label}: {r.first_error}"
        for name, row in results.exact.items()
        for label, r in row.items()
        if r.first_error
    ]
    lines += [
        f"- {name}, {label}, timing: {s.error}"
        for name, row in results.speeds.items()
        for label, s in row.items()
        if s.error
    ]
    lines += [f"- skipped {line}" for line in results.skipped]
    return ["Notes:", *lines] if lines else []


def versions() -> str:
    parts = [f"PyAV {av.__version__} (FFmpeg {av.ffmpeg_version_info})"]
    for module in ("torchcodec", "decord"):
        try:
            parts.append(f"{module} {importlib.import_module(module).__version__}")
        except Exception:  # absent or broken: the tables say which
            parts.append(f"{module} {NOT_INSTALLED}")
    command = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return ", ".join(parts) + f"; reference: {command}"


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# --- run ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="+", default=CORPUS, choices=CORPUS, metavar="NAME", help="corpus files")
    parser.add_argument("--clips", type=int, default=80, help="timed TSN clips per reader and file (default 80)")
    parser.add_argument("--rounds", type=int, default=4, help="rounds the readers take turns in (default 4)")
    parser.add_argument("--baseline", default="main", help="git revision of the baseline decoder, or none")
    folder = Path(tempfile.gettempdir()) / "vast-decoder-corpus"
    parser.add_argument("--folder", type=Path, default=folder, help=f"corpus cache, kept for the next run ({folder})")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Results:
    corpus = Corpus(args.folder)
    columns = readers(args.baseline, args.folder)
    working = {label: opener for label, opener in columns.items() if not isinstance(opener, str)}
    missing = {label: opener for label, opener in columns.items() if isinstance(opener, str)}
    results = Results(list(columns), missing, load_before=load())
    for name in args.files:
        try:
            path, reference = corpus.path(name), corpus.reference(name)
        except CorpusUnavailable as exc:
            results.skipped.append(f"{name}: {exc}")
            continue
        print(f"{name}: {len(reference)} frames", file=sys.stderr, flush=True)
        results.frame_counts[name] = len(reference)
        results.exact[name] = {label: check_exactness(opener, path, reference) for label, opener in working.items()}
        results.speeds[name] = measure_speed(working, path, args.clips, args.rounds)
    return results


if __name__ == "__main__":
    arguments = parse_args()
    print(report(run(arguments), arguments.clips, arguments.rounds, arguments.baseline))
