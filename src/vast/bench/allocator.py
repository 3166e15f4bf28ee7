"""glibc malloc settings that let large tensors reuse freed memory instead of faulting in fresh pages.

PyTorch's CPU allocator asks ``malloc`` for every tensor. glibc serves blocks above its mmap threshold
(128 KiB, raised dynamically up to 32 MiB) with a fresh ``mmap`` and returns them with ``munmap`` when
freed, and it trims the top of its heap back to the kernel above a trim threshold. A video model's
large activations (a 1x8x56x56x384 float tensor is 38.5 MB, above any threshold) are therefore new
pages on every forward pass: the kernel zero-fills each 4 KiB page on first touch, a cost proportional
to the bytes allocated that is not compute and that grows with the clip (twice the frames, twice the
faults).

:func:`tuned_malloc` turns off ``mmap`` for large blocks (``M_MMAP_MAX = 0``) and heap trimming
(``M_TRIM_THRESHOLD`` huge), so freed blocks stay in the heap and the next pass reuses warm pages.
The price: the process keeps its peak heap (its RSS does not shrink after a large pass). That is a
process-wide policy, which is why the library never sets it on its own: ``vast bench`` leaves glibc as
it is unless asked (``--malloc tuned`` sets it for the run), and a serving process can set it the same
way or through the environment before Python starts::

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647 python ...
    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647 python ...
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Iterator

_logger = logging.getLogger(__name__)

# mallopt parameters (glibc <malloc.h>) and glibc's documented defaults, restored on exit.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX = 128 * 1024, 65536
KEEP = 2**31 - 1  # the largest trim threshold mallopt takes: keep up to 2 GiB of free heap


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.gnu_get_libc_version  # noqa: B018 (present in glibc only)
    except (OSError, AttributeError):
        return None
    return libc


def set_malloc_reuse(enable: bool = True) -> bool:
    """Keep large freed blocks for reuse (``enable``) or go back to glibc's defaults; returns whether
    the C library is glibc and accepted the settings (elsewhere this does nothing)."""
    libc = _glibc()
    if libc is None:
        _logger.debug("not glibc: malloc settings left alone")
        return False
    mmap_max, trim = (0, KEEP) if enable else (DEFAULT_MMAP_MAX, DEFAULT_TRIM_THRESHOLD)
    ok = bool(libc.mallopt(M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
    if not enable:
        libc.malloc_trim(0)
    return ok


@contextlib.contextmanager
def tuned_malloc(enable: bool = True) -> Iterator[bool]:
    """Within the block, large freed blocks are kept for reuse (see the module docstring); afterwards
    glibc's defaults are restored and the kept memory is given back. Yields whether it applied."""
    applied = set_malloc_reuse(True) if enable else False
    try:
        yield applied
    finally:
        if applied:
            set_malloc_reuse(False)
