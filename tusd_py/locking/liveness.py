"""Is the process that holds a Redis lock still alive? (same host only)

A lock's value names its holder: ``<token> <boot-id> <mark>``, where
``<mark>`` is the absolute path of a file the holder's process keeps
``flock``-ed for its whole life (:class:`ProcessMark`) and ``<boot-id>`` the
kernel's boot id. The kernel drops the ``flock`` when the process dies (even
by ``kill -9``), so another process on the same kernel can tell, at once and
without waiting for the lock's TTL, that a holder is gone:

* same boot id, mark present and *lockable* → the holder is **dead**;
* mark locked by someone → alive; a different boot id (another host or
  container kernel), a missing mark or a value in another format →
  **unknown**, treated as alive (the lock then frees itself ``lock_ttl``
  after its last renewal, as before).

Only "dead" lets a lock be taken over, so a mistake errs towards waiting.
The owner touches its mark whenever it takes or renews a lock; a mark that
is lockable and untouched for ``sweep_age`` seconds can name no live lock
any more (each expired) and is removed by the next process that starts.
All calls are single local syscalls (like :mod:`tusd_py.locking.file`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from pathlib import Path

log = logging.getLogger("tusd_py.app")

#: Where the kernel publishes the id of the current boot (Linux).
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
#: Suffix of mark files.
SUFFIX = ".alive"


def boot_id() -> str:
    """This kernel's boot id ("" if unknown: then no holder is ever judged dead)."""
    try:
        return BOOT_ID_PATH.read_text().strip().replace(" ", "")
    except OSError:
        return ""


def _lockable(path: str) -> bool | None:
    """True if nobody holds ``path``'s flock, False if someone does, None if
    the file cannot be opened (missing or unreadable)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops our probe's shared lock
    return True


class ProcessMark:
    """This process's mark file, ``flock``-ed from :meth:`open` until :meth:`close`.

    Create it in the process that takes locks (not before a fork: a child
    would share the parent's ``flock``). Without a ``directory`` there is no
    mark: this process's locks are judged by TTL only, but it still
    recognises other processes' dead marks.
    """

    def __init__(self, directory: Path | None, *, sweep_age: float = 3600.0) -> None:
        self.directory = Path(directory).resolve() if directory is not None else None
        self.sweep_age = sweep_age
        self.boot = boot_id()
        self.path = ""
        self._fd: int | None = None
        self._tried = False

    @property
    def holder(self) -> str:
        """``<boot-id> <mark>`` for lock values ("" until opened)."""
        return f"{self.boot} {self.path}" if self._fd is not None and self.boot else ""

    def open(self) -> None:
        """Create and lock the mark (idempotent); sweeps dead, stale marks first.
        Failures are logged: locks then carry no mark and are judged by TTL only."""
        if self._tried or self.directory is None:
            return
        self._tried = True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sweep(self.directory)
            path = self.directory / f"{os.getpid()}-{secrets.token_hex(8)}{SUFFIX}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BaseException:
                os.close(fd)
                raise
        except OSError as exc:
            log.warning(
                "no liveness mark in %s (%s): dead lock holders free by TTL only", self.directory, exc
            )
            return
        self.path, self._fd = str(path), fd

    def touch(self) -> None:
        """Record that a lock naming this mark was just taken or renewed."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.utime(self._fd)

    def is_dead(self, holder: str) -> bool:
        """True only if ``holder`` (``<boot-id> <mark>``) is surely a dead
        process on this kernel (see the module docstring)."""
        boot, _, path = holder.partition(" ")
        if not self.boot or boot != self.boot or not path or path == self.path:
            return False
        return _lockable(path) is True

    def _sweep(self, directory: Path) -> None:
        """Remove marks of dead processes untouched for ``sweep_age`` seconds."""
        now = time.time()
        with os.scandir(directory) as entries:
            found = [entry for _, entry in zip(range(10_000), entries, strict=False)]
        for entry in found:
            if not entry.name.endswith(SUFFIX):
                continue
            with contextlib.suppress(OSError):
                if now - entry.stat().st_mtime > self.sweep_age and _lockable(entry.path) is True:
                    os.unlink(entry.path)

    def close(self) -> None:
        """Unlock and remove the mark (a clean exit); idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(fd)
