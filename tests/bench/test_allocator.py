"""tuned_malloc against the kernel's own count of page faults: reused heap pages are not faulted in again."""

import json
import subprocess
import sys
import textwrap

import pytest

from vast.bench.allocator import _glibc

pytestmark = pytest.mark.skipif(_glibc() is None, reason="mallopt is glibc's")

# Measured in a fresh process, glibc's defaults first: a heap that tuned passes have grown serves later
# large blocks even with the defaults back. And the tuned passes are judged in their steady state: a
# 64-byte-aligned block (PyTorch's) may not fit into the exact hole that the previous one left, so the
# heap can grow once or twice before every block is reused, as in a benchmark's warm-up passes.
MEASURE = textwrap.dedent(
    """
    import json, resource, torch
    from vast.bench.allocator import tuned_malloc

    NBYTES = 64 * 2**20

    def faults_of_one_pass():
        # minor page faults of allocating and filling a large tensor, after one such tensor was freed
        torch.empty(NBYTES // 4).fill_(1.0)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        torch.empty(NBYTES // 4).fill_(2.0)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    default = [faults_of_one_pass() for _ in range(3)]  # mmap'ed, unmapped, faulted afresh every time
    with tuned_malloc() as applied:
        tuned = [faults_of_one_pass() for _ in range(6)]
    print(json.dumps(dict(applied=applied, tuned=tuned, default=default,
                          pages=NBYTES // resource.getpagesize())))
    """
)


def test_freed_large_blocks_are_reused_only_when_tuned():
    done = subprocess.run([sys.executable, "-c", MEASURE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    pages, tuned, default = result["pages"], result["tuned"], result["default"]
    assert result["applied"]
    assert min(default) > 0.5 * pages, f"only {default} page faults with glibc's defaults (of {pages} pages)"
    assert max(tuned[-3:]) < 0.1 * pages, f"{tuned} page faults with reuse on (of {pages} pages)"


def test_untuned_changes_nothing(monkeypatch):
    from vast.bench import allocator

    calls = []
    monkeypatch.setattr(allocator, "set_malloc_reuse", lambda enable=True: calls.append(enable) or True)
    with allocator.tuned_malloc(enable=False) as applied:
        assert applied is False
    with allocator.tuned_malloc() as applied:
        assert applied is True
    assert calls == [True, False]
