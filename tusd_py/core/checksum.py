"""Checksum extension support: incremental hashers, the staging file and
whole-upload digests.

A checksummed PATCH is all-or-nothing: its body is written to a staging file
under ``<data_dir>/staging/`` while being hashed, and only after the digest
matches is it appended to the upload (replayed in bounded blocks). A cut or
mismatching request deletes its staging file and leaves the upload as it was.

Whole-upload digest (the ``checksum`` of the status document): while every
PATCH of an upload carries ``Upload-Checksum`` with one algorithm, each
verified chunk also feeds a running hash of the upload kept by
:class:`FileDigests` in this process; when the last byte is stored the digest
is recorded on the upload as ``"<algorithm>:<hex>"``. A single checksummed
PATCH of the whole file thus yields exactly the client's digest. The running
hash cannot cross processes: an upload resumed on another instance or worker,
or one with a PATCH without ``Upload-Checksum`` (or with another algorithm),
gets no whole-upload digest (``checksum`` stays null) — each of its
checksummed chunks was still verified.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from storage.base import ChunkWriter
from storage.local import map_os_errors

REPLAY_BLOCK = 1 << 20


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...

    def copy(self) -> Hasher: ...


class _Crc32:
    def __init__(self, value: int = 0) -> None:
        self._value = value

    def copy(self) -> _Crc32:
        return _Crc32(self._value)

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def new_hasher(algorithm: str) -> Hasher:
    """An incremental hasher for a tus checksum algorithm name."""
    if algorithm == "crc32":
        return _Crc32()
    return hashlib.new(algorithm, usedforsecurity=False)


#: Running whole-upload hashes kept per process (least recently used dropped).
MAX_RUNNING_DIGESTS = 1024


class FileDigests:
    """Running hashes of uploads whose PATCHes all carried ``Upload-Checksum``.

    One entry per upload: ``(algorithm, offset, hasher)``, the hash of bytes
    ``[0, offset)``. Bounded (:data:`MAX_RUNNING_DIGESTS`); an evicted or
    unknown entry just means no whole-upload digest for that upload.
    """

    def __init__(self, capacity: int = MAX_RUNNING_DIGESTS) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[str, int, Hasher]] = OrderedDict()

    def resume(self, upload_id: str, algorithm: str, offset: int) -> Hasher | None:
        """A hasher of the upload's bytes ``[0, offset)`` to continue (a copy:
        the entry changes only by :meth:`advance`), or None if unknown."""
        if offset == 0:
            return new_hasher(algorithm)
        entry = self._entries.get(upload_id)
        if entry is None or entry[0] != algorithm or entry[1] != offset:
            return None
        self._entries.move_to_end(upload_id)
        return entry[2].copy()

    def advance(self, upload_id: str, algorithm: str, offset: int, hasher: Hasher) -> None:
        """Record ``hasher`` as the hash of the upload's bytes ``[0, offset)``."""
        self._entries[upload_id] = (algorithm, offset, hasher)
        self._entries.move_to_end(upload_id)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget(self, upload_id: str) -> None:
        self._entries.pop(upload_id, None)


def digest_label(algorithm: str, hasher: Hasher) -> str:
    """The ``checksum`` of a status document: ``"<algorithm>:<hex digest>"``."""
    return f"{algorithm}:{hasher.digest().hex()}"


class StagingFile:
    """A temporary file holding one checksummed request body."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{secrets.token_hex(12)}.stage"
        with map_os_errors("staging"):
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        """Append ``chunk`` (bounded by the read size; runs on the loop)."""
        assert self._fd is not None
        view = memoryview(chunk)
        with map_os_errors("staging write"):
            while view:
                n = os.write(self._fd, view)
                self.size += n
                view = view[n:]

    async def replay_into(self, writer: ChunkWriter) -> None:
        """Append the staged bytes to ``writer`` in bounded blocks."""
        assert self._fd is not None
        position = 0
        while position < self.size:
            with map_os_errors("staging read"):
                block = os.pread(self._fd, min(REPLAY_BLOCK, self.size - position), position)
            if not block:
                break
            await writer.write(block)
            position += len(block)

    def discard(self) -> None:
        """Close and delete the staging file; idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def clear_staging(directory: Path, older_than: float, now: float) -> int:
    """Delete staging files left by a crash (not modified for ``older_than``
    seconds, so live requests of sibling workers are spared); returns how many."""
    removed = 0
    if directory.is_dir():
        for entry in directory.glob("*.stage"):
            with contextlib.suppress(FileNotFoundError):
                if now - entry.stat().st_mtime > older_than:
                    entry.unlink()
                    removed += 1
    return removed
