"""The bounded per-upload disk spool of the S3 relay.

Layout: ``<data_dir>/s3spool/<upload_id>/<part number>`` (zero-padded), one
file per multipart part that is not yet confirmed in S3. A file holds the
part's bytes from its start; a *sealed* part is complete and waits for (or
is in) UploadPart; the one unsealed file, if any, is the part being filled
(the tail). Bytes in these files are held durably (they survive a process
crash), so they count towards the upload's offset.

Bound: at most ``limit`` sealed parts plus the part being filled. A writer
calls :meth:`PartSpool.wait_for_room` before starting a new part and is
suspended until an upload finishes (back-pressure reaches the client
through TCP). Appends of one request chunk run on the event loop, like the
local backend's writes; spliced bodies are moved into :meth:`PartSpool.target`
by the kernel in a worker thread (:mod:`storage.s3_splice`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from storage.local import map_os_errors


class PartSpool:
    """Part files of one upload, with back-pressure on sealed parts."""

    def __init__(self, directory: Path, limit: int) -> None:
        self.directory = directory
        self.limit = limit
        self._pending: set[int] = set()
        self._fd: int | None = None
        self._fd_number = 0
        self._changed = asyncio.Event()
        #: Bytes currently in the spool files (kept up to date by this class).
        self.bytes_held = 0
        #: The largest ``bytes_held`` seen, for tests and metrics.
        self.peak_bytes = 0
        #: How many times a writer had to wait for room.
        self.waits = 0

    def path(self, number: int) -> Path:
        return self.directory / f"{number:05d}"

    def existing(self) -> dict[int, int]:
        """``{part number: size}`` of the files on disk (after a restart)."""
        found: dict[int, int] = {}
        if not self.directory.is_dir():
            return found
        with map_os_errors("spool scan"):
            for entry in os.scandir(self.directory):
                if entry.name.isdigit():
                    found[int(entry.name)] = entry.stat().st_size
        return found

    def adopt(self, sizes: dict[int, int]) -> None:
        """Account for files found on disk by :meth:`existing`."""
        self.bytes_held = sum(sizes.values())
        self.peak_bytes = max(self.peak_bytes, self.bytes_held)

    # --- writing -------------------------------------------------------------------

    def target(self, number: int) -> int:
        """The open file of part ``number`` (the part being filled), its
        position at the file's end: written by :meth:`append`, or by a kernel
        copy (:mod:`storage.s3_splice`, which then reports :meth:`added`).

        Not ``O_APPEND``: ``splice(2)`` refuses append-mode files. One writer
        per spool (the lock holder's pipeline), so the position is the end."""
        if self._fd is None or self._fd_number != number:
            self.close_current()
            with map_os_errors("spool open"):
                self.directory.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path(number), os.O_WRONLY | os.O_CREAT, 0o640)
                try:
                    os.lseek(fd, 0, os.SEEK_END)
                except OSError:
                    os.close(fd)
                    raise
            self._fd = fd
            self._fd_number = number
        return self._fd

    def append(self, number: int, data: memoryview) -> None:
        """Append ``data`` to part ``number`` (the part being filled)."""
        fd = self.target(number)
        view = data
        with map_os_errors("spool write"):
            while view:
                n = os.write(fd, view)
                self.added(n)
                view = view[n:]

    def added(self, n: int) -> None:
        """``n`` bytes were appended to the part being filled."""
        self.bytes_held += n
        self.peak_bytes = max(self.peak_bytes, self.bytes_held)

    async def sync(self) -> None:
        """fsync every part file and the directory, off the event loop
        (``local.fsync = every_patch``: the spool then holds durably what it
        counts towards the offset)."""
        self.close_current()
        with map_os_errors("spool fsync"):
            await asyncio.get_running_loop().run_in_executor(None, _sync_tree, self.directory)

    def close_current(self) -> None:
        """Close the open part file, if any (its bytes stay)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with map_os_errors("spool close"):
                os.close(fd)

    def seal(self, number: int) -> None:
        """Part ``number`` is complete; it now waits for upload."""
        if self._fd_number == number:
            self.close_current()
        self._pending.add(number)

    @property
    def pending(self) -> int:
        """Sealed parts not yet confirmed in S3."""
        return len(self._pending)

    def pending_numbers(self) -> list[int]:
        """The sealed part numbers, lowest first."""
        return sorted(self._pending)

    def done(self, number: int, size: int) -> None:
        """Part ``number`` (``size`` bytes) is in S3: delete its file, wake writers."""
        self._pending.discard(number)
        if self._fd_number == number:
            self.close_current()
        if self._remove(number):
            self.bytes_held = max(0, self.bytes_held - size)
        self.notify()

    def _remove(self, number: int) -> bool:
        """Delete part ``number``'s file; False if it was already gone."""
        with map_os_errors("spool remove"):
            try:
                os.unlink(self.path(number))
            except FileNotFoundError:
                return False
        return True

    def forget(self, number: int, size: int) -> None:
        """Delete part ``number``'s file without it being sealed (tail moved elsewhere)."""
        if self._fd_number == number:
            self.close_current()
        if self._remove(number):
            self.bytes_held = max(0, self.bytes_held - size)

    def notify(self) -> None:
        """Wake writers waiting for room (after progress or a failure)."""
        self._changed.set()

    async def wait_for_room(self, check: Callable[[], None]) -> None:
        """Return once fewer than ``limit`` parts are sealed.

        ``check`` runs before each wait and may raise (e.g. S3 is down and
        the spool is full: the client gets a 503 instead of waiting).
        """
        waited = False
        while len(self._pending) >= self.limit:
            check()
            if not waited:
                self.waits += 1
                waited = True
            self._changed.clear()
            await self._changed.wait()

    def destroy(self) -> None:
        """Delete every file of the spool."""
        self.close_current()
        self._pending.clear()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.bytes_held = 0
        self.notify()


def copy_range(source: Path, target: Path, start: int, length: int) -> None:
    """Kernel copy of ``length`` bytes at ``start`` of ``source`` into a new ``target``."""
    src = os.open(source, os.O_RDONLY)
    try:
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            done = 0
            while done < length:
                n = os.copy_file_range(src, out, length - done, start + done)
                if n == 0:
                    raise OSError(f"short copy from {source}")
                done += n
        finally:
            os.close(out)
    finally:
        os.close(src)


def _sync_tree(directory: Path) -> None:
    """fsync the files of ``directory``, then the directory (absent: nothing)."""
    if not directory.is_dir():
        return
    for entry in os.scandir(directory):
        try:
            fd = os.open(entry.path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
