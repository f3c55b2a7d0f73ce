"""Concatenation into an S3 object: partials become parts of one multipart upload.

A partial already stored in S3 is copied server-side with UploadPartCopy
(ranges of at most 5 GiB). Bytes that cannot form a part on their own — a
local partial, or an S3 partial shorter than the minimum part size, or the
few MiB needed to top up a short pending part before a copy — are streamed
through a spool part file and uploaded with UploadPart. Every part but the
last therefore respects ``min_part_size``.

Assembly is all-or-nothing: on any failure the multipart upload is aborted
and the spool removed; the service retries on a later HEAD/GET.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.local import READ_BLOCK, map_os_errors
from storage.parts import MAX_PART_SIZE, copy_ranges
from storage.s3_client import AsyncS3
from storage.spool import PartSpool
from tusd_py.core import errors


@dataclass(frozen=True, slots=True)
class Source:
    """One partial: a local file (``path``) or an S3 object (``key``)."""

    length: int
    path: Path | None = None
    key: str | None = None


class Assembler:
    """Builds one multipart upload from :class:`Source` values in order."""

    def __init__(
        self,
        *,
        s3: AsyncS3,
        key: str,
        multipart_id: str,
        spool: PartSpool,
        slots: asyncio.Semaphore,
        part_size: int,
        min_part_size: int,
        max_parts: int,
    ) -> None:
        self.s3 = s3
        self.key = key
        self.multipart_id = multipart_id
        self.spool = spool
        self._slots = slots
        self.part_size = min(part_size, MAX_PART_SIZE)
        self.min_part_size = min_part_size
        self.max_parts = max_parts
        self.parts: list[tuple[int, str]] = []
        self._number = 0
        self._pending = 0
        self._tasks: list[asyncio.Task[tuple[int, str]]] = []
        #: How many parts were copied server-side (for tests and logs).
        self.copied = 0

    def _next_number(self) -> int:
        self._number += 1
        if self._number > self.max_parts:
            raise errors.StorageError(f"concatenation needs more than {self.max_parts} S3 parts")
        return self._number

    async def _upload(self, number: int, size: int) -> tuple[int, str]:
        async with self._slots:
            etag = await self.s3.upload_part(
                self.key, self.multipart_id, number, self.spool.path(number), size
            )
        self.spool.done(number, size)
        return number, etag

    async def _collect(self, keep: int) -> None:
        while len(self._tasks) > keep:
            task = self._tasks.pop(0)
            self.parts.append(await task)

    async def _flush_pending(self) -> None:
        if not self._pending:
            return
        number, size = self._number, self._pending
        self._pending = 0
        self.spool.seal(number)
        self._tasks.append(asyncio.create_task(self._upload(number, size)))
        await self._collect(keep=max(0, self.spool.limit - 1))

    async def _append(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._pending == 0:
                self._next_number()
            take = min(len(view), self.part_size - self._pending)
            self.spool.append(self._number, view[:take])
            self._pending += take
            view = view[take:]
            if self._pending >= self.part_size:
                await self._flush_pending()

    async def _stream(self, source: Source, start: int, end: int) -> None:
        """Append bytes ``start..end-1`` of ``source`` to the pending parts."""
        if start >= end:
            return
        if source.key is not None:
            async for block in self.s3.read_range(source.key, start, end - 1):
                await self._append(block)
            return
        assert source.path is not None
        loop = asyncio.get_running_loop()
        with map_os_errors("concatenation read"):
            fd = os.open(source.path, os.O_RDONLY)
        try:
            position = start
            while position < end:
                with map_os_errors("concatenation read"):
                    block = await loop.run_in_executor(
                        None, os.pread, fd, min(READ_BLOCK, end - position), position
                    )
                if not block:
                    raise errors.StorageError(f"partial file {source.path.name} is shorter than recorded")
                position += len(block)
                await self._append(block)
        finally:
            os.close(fd)

    async def _copy(self, source_key: str, start: int, end: int) -> None:
        await self._flush_pending()
        number = self._next_number()
        async with self._slots:
            etag = await self.s3.upload_part_copy(self.key, self.multipart_id, number, source_key, start, end)
        await self._collect(keep=0)
        self.parts.append((number, etag))
        self.copied += 1

    async def build(self, sources: Sequence[Source]) -> None:
        """Make the object: :meth:`run`, then complete the multipart upload
        (an empty object when there is no part). On failure the multipart
        upload is aborted; the spool is removed either way."""
        try:
            parts = await self.run(sources)
            if parts:
                await self.s3.complete(self.key, self.multipart_id, parts)
            else:
                await self.s3.abort(self.key, self.multipart_id)
                await self.s3.put_file(self.key, None, 0, {})
        except BaseException:
            with contextlib.suppress(errors.TusError):
                await self.s3.abort(self.key, self.multipart_id)
            raise
        finally:
            self.spool.destroy()

    async def run(self, sources: Sequence[Source]) -> list[tuple[int, str]]:
        """Upload every source; returns the ``(number, etag)`` list in order."""
        try:
            for index, source in enumerate(sources):
                last = index == len(sources) - 1
                if source.key is None or source.length == 0:
                    await self._stream(source, 0, source.length)
                    continue
                position = 0
                if 0 < self._pending < self.min_part_size:
                    position = min(source.length, self.min_part_size - self._pending)
                    await self._stream(source, 0, position)
                rest = source.length - position
                if rest >= self.min_part_size:
                    for start, end in copy_ranges(position, source.length, self.min_part_size):
                        await self._copy(source.key, start, end)
                elif rest > 0 and last:
                    # The object's last part may be short (pending is 0 or >= minimum here).
                    await self._copy(source.key, position, source.length)
                else:
                    await self._stream(source, position, source.length)
            await self._flush_pending()
            await self._collect(keep=0)
        except BaseException:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            raise
        self.parts.sort()
        return self.parts
