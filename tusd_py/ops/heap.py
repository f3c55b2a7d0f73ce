"""glibc heap tuning for the long-running server (no-op on other C libraries).

Why: the server's Python heap stays flat under load (tracemalloc: a few MiB
of lazily loaded botocore models and pooled Redis connections after
warm-up), yet RSS used to grow 20-28 % over a 10-minute soak. The growth is
the allocator's: glibc gives every thread that allocates concurrently its
own heap arena (up to 8 per core), and the executor threads (file I/O, S3
calls, log writer) each fragment theirs with 64 KiB-8 MiB request chunks;
freed memory in the middle of an arena is never returned to the kernel.

* :func:`limit_arenas` caps the arenas at :data:`ARENA_MAX` (``mallopt``),
  unless the operator set ``MALLOC_ARENA_MAX`` themselves, which wins;
* :class:`Trimmer` calls ``malloc_trim(0)`` every :data:`TRIM_INTERVAL`
  seconds from its own daemon thread (never on the IOLoop), handing free
  pages of every arena back to the kernel.

Both are called by ``tusd-py serve`` (:mod:`tusd_py.cli.serve`, and each
``--workers`` child in :mod:`tusd_py.cli.workers`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Mapping

log = logging.getLogger("tusd_py.heap")

#: ``mallopt`` parameter number of ``M_ARENA_MAX`` (glibc ``malloc.h``).
M_ARENA_MAX = -8
#: Heap arenas the server's threads share (the main arena plus one).
ARENA_MAX = 2
#: Seconds between two ``malloc_trim(0)`` calls.
TRIM_INTERVAL = 30.0
#: The environment variable with which an operator sets the arena count.
ARENA_ENV = "MALLOC_ARENA_MAX"


def glibc() -> ctypes.CDLL | None:
    """The running process's glibc, or None (musl, macOS, ...)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    # Only glibc has all three (musl has no malloc_trim or gnu_get_libc_version).
    if all(hasattr(libc, name) for name in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return libc
    return None


def limit_arenas(environ: Mapping[str, str] | None = None, count: int = ARENA_MAX) -> bool:
    """Cap glibc's heap arenas at ``count``; True if applied. Call it before the
    process starts threads (arenas created earlier stay). Skipped (False) when
    ``MALLOC_ARENA_MAX`` is set in ``environ`` (default ``os.environ``): glibc
    read it at start-up and the operator's value wins."""
    env = os.environ if environ is None else environ
    libc = glibc()
    if libc is None or env.get(ARENA_ENV):
        return False
    return bool(libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(count)))


def trim() -> bool:
    """``malloc_trim(0)``: True if glibc returned memory to the kernel."""
    libc = glibc()
    return libc is not None and bool(libc.malloc_trim(ctypes.c_size_t(0)))


class Trimmer:
    """A daemon thread that calls :func:`trim` every ``interval`` seconds until
    :meth:`stop`. Does nothing (no thread) without glibc."""

    def __init__(self, interval: float = TRIM_INTERVAL) -> None:
        self.interval = interval
        self.trims = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Trimmer:
        if glibc() is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tusd-heap-trim", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                trim()
            except OSError as exc:  # pragma: no cover - ctypes call cannot fail on glibc
                log.warning("malloc_trim failed: %s", exc)
                return
            self.trims += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (bounded by ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Trimmer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
