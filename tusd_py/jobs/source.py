"""Reading an upload from a worker thread: its record and its bytes.

The state store and storages are asyncio objects living on one event loop
(the server's IOLoop under ``serve``, the worker command's own loop under
``tusd-py worker``). :class:`UploadSource` runs their coroutines on that loop
with ``run_coroutine_threadsafe`` and waits in the calling (worker) thread, so
parsing and hashing never occupy the loop. Bytes are streamed chunk by chunk
(storage ``read``: local disk blocks, or the S3 object body); nothing is
loaded whole.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from tusd_py.core.composer import Composer
from tusd_py.core.models import UploadInfo
from tusd_py.jobs.runner import PermanentJobError

T = TypeVar("T")

#: Seconds one call on the loop (a record read, one chunk) may take.
CALL_TIMEOUT = 120.0


async def _next(reader: AsyncIterator[bytes]) -> bytes:
    return await reader.__anext__()


class UploadSource:
    """Records and bytes of uploads, for job kinds running in worker threads."""

    def __init__(self, composer: Composer, loop: asyncio.AbstractEventLoop) -> None:
        self.composer = composer
        self.loop = loop

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (worker threads only)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CALL_TIMEOUT)

    def upload(self, file_id: str) -> UploadInfo:
        """The complete upload ``file_id``; :class:`PermanentJobError` otherwise."""
        info = self.call(self.composer.state.get(file_id))
        if info is None:
            raise PermanentJobError(f"upload {file_id} does not exist (terminated or expired)")
        if not info.is_complete:
            raise PermanentJobError(f"upload {file_id} is not complete")
        return info

    def chunks(self, info: UploadInfo) -> Iterator[bytes]:
        """The stored bytes of ``info`` in order, streamed."""
        if not info.length:
            return
        reader = self.composer.storage(info.storage).read(info, 0, info.length - 1)
        try:
            while True:
                try:
                    yield self.call(_next(reader))
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(reader, "aclose", None)
            if aclose is not None:
                self.call(aclose())

    def lines(self, info: UploadInfo) -> Iterator[str]:
        """The upload as UTF-8 text lines split at ``\\n`` (endings kept; a BOM dropped;
        undecodable bytes replaced)."""
        decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        pending = ""
        for chunk in self.chunks(info):
            pending += decoder.decode(chunk)
            start = 0
            while (end := pending.find("\n", start)) != -1:
                yield pending[start : end + 1]
                start = end + 1
            pending = pending[start:]
        pending += decoder.decode(b"", final=True)
        if pending:
            yield pending
