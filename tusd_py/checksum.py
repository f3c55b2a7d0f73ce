"""Checksum extension support: incremental hashers and the staging file.

A checksummed PATCH is all-or-nothing: its body is written to a staging file
under ``<data_dir>/staging/`` while being hashed, and only after the digest
matches is it appended to the upload (replayed in bounded blocks). A cut or
mismatching request deletes its staging file and leaves the upload as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import zlib
from pathlib import Path
from typing import Protocol

from storage.base import ChunkWriter
from storage.local import map_os_errors

REPLAY_BLOCK = 1 << 20


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


def new_hasher(algorithm: str) -> Hasher:
    """An incremental hasher for a tus checksum algorithm name."""
    if algorithm == "crc32":
        return _Crc32()
    return hashlib.new(algorithm, usedforsecurity=False)


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
