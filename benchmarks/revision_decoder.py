"""``PyAVDecoder`` as it was at a git revision, loaded beside this tree's for side-by-side benchmarks.

Before the decoding package (``src/vast/data/decoding/``) the decoder was one file,
``src/vast/data/decoding.py``; either form is taken from the revision whole and imported under a name of
its own (``vast.data.decoding`` inside it renamed), so the baseline runs its own demuxing, skipping and
indexing code. The rest of ``vast`` (the frame index store, the errors) comes from this tree.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = "src/vast/data/decoding"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def revision_pyav_decoder(revision: str, folder: Path) -> type:
    """The ``PyAVDecoder`` class of ``revision``, its module files written under ``folder``."""
    name = "baseline_decoding_" + "".join(c if c.isalnum() else "_" for c in revision)
    files = _git("ls-tree", "-r", "--name-only", revision, "--", f"{SOURCE}.py", SOURCE).split()
    if not files:
        raise SystemExit(f"{revision} has neither {SOURCE}.py nor {SOURCE}/")
    for file in files:
        text = _git("show", f"{revision}:{file}").replace("vast.data.decoding", name)
        relative = Path(file).relative_to("src/vast/data")
        target = folder / (f"{name}.py" if relative.name == "decoding.py" else Path(name, *relative.parts[1:]))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    sys.path.insert(0, str(folder))
    return importlib.import_module(name).PyAVDecoder
