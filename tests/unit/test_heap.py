"""tusd_py.ops.heap: glibc arena cap and periodic malloc_trim (the soak's RSS growth).

The arena and RSS checks run in a fresh interpreter each, so this pytest
process's heap is not changed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tusd_py.ops import heap

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(heap.glibc() is None, reason="needs glibc")

#: Counts glibc's heap arenas (``malloc_info`` XML) after 8 threads malloc at once.
_ARENAS = """
import ctypes, os, sys, tempfile, threading
from tusd_py.ops import heap
if sys.argv[1] == "cap":
    assert heap.limit_arenas({})
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
gate = threading.Barrier(8)
def work():
    gate.wait()  # all threads alive at once: each wants its own arena
    block = libc.malloc(4096)
    gate.wait()
    libc.free(block)
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
path = os.path.join(tempfile.mkdtemp(), "info.xml")
fp = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, fp)
libc.fclose(fp)
print(open(path).read().count("<heap nr="))
"""

#: RSS (KiB) after freeing all but every 16th of 16 000 malloc'd 4 KiB blocks,
#: then after trim(): the kept blocks pin the pages, only malloc_trim returns them.
_TRIM = """
import ctypes, sys
from tusd_py.ops import heap
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallopt(-1, 128 * 1024 * 1024)  # M_TRIM_THRESHOLD: no automatic trim at free()
blocks = [libc.malloc(4000) for _ in range(16000)]
for b in blocks:
    ctypes.memset(b, 1, 4000)
for i, b in enumerate(blocks):
    if i % 16:
        libc.free(b)
before = rss()
if sys.argv[1] == "trim":
    assert heap.trim()
print(before, rss())
"""


def _run(script: str, arg: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), arg],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_limit_arenas_caps_concurrent_threads_at_two_arenas() -> None:
    assert int(_run(_ARENAS, "nocap")) > heap.ARENA_MAX  # the default lets them spread
    assert int(_run(_ARENAS, "cap")) <= heap.ARENA_MAX


def test_limit_arenas_leaves_an_operator_setting_alone() -> None:
    assert heap.limit_arenas({heap.ARENA_ENV: "4"}) is False


def test_trim_returns_freed_pages_pinned_by_live_blocks() -> None:
    before, after = map(int, _run(_TRIM, "trim").split())
    assert before - after > 30_000  # of ~58 MiB freed between 3.9 MiB of live blocks
    before, after = map(int, _run(_TRIM, "keep").split())
    assert before - after < 5_000  # without malloc_trim glibc keeps them


def test_trimmer_trims_periodically_and_stops() -> None:
    trimmer = heap.Trimmer(interval=0.01).start()
    try:
        deadline = time.monotonic() + 10
        while trimmer.trims < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert trimmer.trims >= 3
    finally:
        trimmer.stop()
    assert not any(t.name == "tusd-heap-trim" for t in threading.enumerate())  # joined
