"""tuned_malloc against the kernel's own count of page faults: reused heap pages are not faulted in again."""

import resource

import pytest
import torch

from vast.engine.allocator import _glibc, tuned_malloc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")

MB = 2**20
PAGE = resource.getpagesize()


def _faults_of_second_pass(nbytes: int) -> int:
    """Minor page faults of allocating and filling a large tensor, after one such tensor was freed."""
    torch.empty(nbytes // 4).fill_(1.0)  # allocated, touched and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(nbytes // 4).fill_(2.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_large_blocks_are_reused_only_when_tuned():
    nbytes = 64 * MB
    pages = nbytes // PAGE
    with tuned_malloc() as applied:
        assert applied
        _faults_of_second_pass(nbytes)  # the heap grows to its steady size (as in a warm-up pass)
        tuned = _faults_of_second_pass(nbytes)
    default = _faults_of_second_pass(nbytes)  # glibc defaults again: mmap'ed, unmapped, faulted afresh
    assert tuned < 0.1 * pages, f"{tuned} page faults with reuse on"
    assert default > 0.5 * pages, f"only {default} page faults with glibc's defaults (of {pages} pages)"
