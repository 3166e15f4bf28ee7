"""`vast data ...`: make the demo or the study data set, check a data set for broken videos."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

from vast.data.annotations import FORMATS, SPLITS, SUBSETS, load_annotations
from vast.errors import DataError


def _generator_options(parser: argparse.ArgumentParser, num_train: int, num_val: int) -> None:
    """The arguments every data-set generator takes: folder, sizes, seed, processes."""
    parser.add_argument("dir", type=Path, help="output folder (created if needed)")
    parser.add_argument(
        "--num-train", type=_positive, default=num_train, metavar="N", help=f"training videos ({num_train})"
    )
    parser.add_argument(
        "--num-val", type=_positive, default=num_val, metavar="N", help=f"validation videos ({num_val})"
    )
    parser.add_argument("--seed", type=_non_negative, default=0, help="random seed; same seed, same videos (0)")
    parser.add_argument("--workers", type=_positive, default=None, metavar="N", help="processes (one per core)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="data set tools (make-demo, make-study, check)")
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    demo = actions.add_parser(
        "make-demo",
        help="write the Moving-Digits demo data set (H.264 MP4 + list annotations)",
        description="Write the Moving-Digits demo data set: 8 motion classes in 4 time-reversal pairs, "
        "16 frames of 64x64, from scikit-learn's bundled handwritten digits.",
    )
    _generator_options(demo, num_train=2000, num_val=400)
    demo.set_defaults(func=run_make_demo)

    study = actions.add_parser(
        "make-study",
        help="write the study data set (harder: frame order and relations decide the class)",
        description="Write the study data set: 12 classes in 6 pairs whose two members show the same frames "
        "in another order (reversed, or the two halves swapped); two actors among distractors over clutter, "
        "camera shake; 16 frames of 32x32.",
    )
    _generator_options(study, num_train=3200, num_val=800)
    study.set_defaults(func=run_make_study)

    check = actions.add_parser(
        "check",
        help="decode every video of a data set, list the broken ones (exit 1 if any)",
        description="Decode every video listed in ANNOTATIONS and print the broken ones with the reason, "
        "and the damaged ones (some packets give no frame, FFmpeg decodes the rest) as warnings. "
        "Exit status: 0 all videos readable (warnings or not), 1 some broken, 2 bad input.",
    )
    check.add_argument(
        "annotations",
        type=Path,
        help="annotation file (list, CSV, Kinetics CSV, SSv2 JSON, UCF101 list), class folder, or official "
        "split folder (ucfTrainTestlist, testTrainMulti_7030_splits)",
    )
    check.add_argument("--root", type=Path, default=None, help="video folder (default: the annotation file's)")
    check.add_argument(
        "--format",
        dest="fmt",
        default="auto",
        choices=("auto", *FORMATS),
        help="annotation format (auto-detected by default)",
    )
    check.add_argument(
        "--split", type=int, choices=SPLITS, default=None, help="ucf101 / hmdb51: the official split to check"
    )
    check.add_argument(
        "--subset", choices=SUBSETS, default="test", help="ucf101 / hmdb51: the split's train or test videos (test)"
    )
    check.add_argument("--workers", type=_positive, default=None, metavar="N", help="processes (one per core)")
    check.add_argument(
        "--index",
        action="store_true",
        help="also index the videos whose container cannot say which frame is which (AVI, MPEG) and keep "
        "the indexes ($VAST_CACHE_DIR/frame-index), so the first training epoch does not decode them whole",
    )
    check.set_defaults(func=run_check)


def run_make_demo(args: argparse.Namespace) -> int:
    from vast.data.moving_digits import make_moving_digits

    made = make_moving_digits(
        args.dir, num_train=args.num_train, num_val=args.num_val, seed=args.seed, workers=args.workers
    )
    print(
        f"wrote {made.num_train} training and {made.num_val} validation videos to {made.root} in {made.seconds:.1f} s"
    )
    print(f"  annotations: {made.train}, {made.val}")
    print(f"  class names: {made.class_names_file}")
    return 0


def run_make_study(args: argparse.Namespace) -> int:
    from vast.data.study_set import make_study_set

    started = time.perf_counter()
    train, val = make_study_set(args.dir, args.num_train, args.num_val, args.seed, args.workers)
    seconds = time.perf_counter() - started
    print(f"wrote {args.num_train} training and {args.num_val} validation videos to {args.dir} in {seconds:.1f} s")
    print(f"  annotations: {train}, {val}")
    print(f"  class names: {train.parent / 'classes.txt'}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from vast.data.decoding import check_videos

    if args.root is not None and not args.root.is_dir():
        raise DataError(f"--root {args.root} is not a folder; pass the folder that holds the videos")
    annotations = load_annotations(args.annotations, root=args.root, fmt=args.fmt, split=args.split, subset=args.subset)
    paths = [record.path for record in annotations.records]
    started = time.perf_counter()
    workers = args.workers or os.cpu_count() or 1
    problems = check_videos(paths, workers=workers, progress=True, index=args.index)
    seconds = time.perf_counter() - started
    if not problems:
        print(f"all {len(paths)} videos of {args.annotations} decode ({seconds:.1f} s)")
        _print_index_line(args.index)
        return 0
    root = args.root or (args.annotations if args.annotations.is_dir() else args.annotations.parent)
    rows = [(_shown(problem.path, root), problem.category, problem.reason) for problem in problems]
    width = [max(len(row[i]) for row in [("path", "problem", ""), *rows]) for i in range(2)]
    print(f"{'path':<{width[0]}}  {'problem':<{width[1]}}  reason")
    for path, category, reason in rows:
        print(f"{path:<{width[0]}}  {category:<{width[1]}}  {reason}")
    broken = sum(problem.broken for problem in problems)
    damaged = len(problems) - broken
    warned = f", {damaged} damaged but readable (warnings)" if damaged else ""
    print(f"{broken} of {len(paths)} videos are broken{warned} ({seconds:.1f} s)")
    _print_index_line(args.index)
    return 1 if broken else 0


def _print_index_line(index: bool) -> None:
    """With --index: where the frame indexes were kept, or that they were kept nowhere."""
    from vast.data.frame_index import FRAME_INDEX_CACHE

    folder = FRAME_INDEX_CACHE.folder
    if not index:
        return
    if folder is None:
        print("frame indexes are not kept on disk (VAST_CACHE_DIR is empty): --index had no lasting effect")
        return
    kept = len(list(folder.glob("*.npy"))) if folder.is_dir() else 0
    print(f"frame indexes kept in {folder} ({kept} there now; files with trusted timestamps need none)")


def _shown(path: str, root: Path) -> str:
    """The path relative to the data root when it lies inside it (shorter table rows)."""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def _whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number ``>= minimum``, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {value}")
        return value

    return parse


_positive = _whole_number(1)
_non_negative = _whole_number(0)
