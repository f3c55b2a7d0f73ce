"""``S3Writer``: one request's bytes into an S3-relayed upload.

A local-phase upload is appended to its file until the offset passes the
threshold, then switched to S3 (:meth:`WriterHost.switch_to_s3`); an
S3-phase upload is written through the lock holder's
:class:`~storage.s3_pipeline.MultipartPipeline`, which :meth:`S3Writer.close`
hands back to the storage to be stopped before the lock is released.
"""

from __future__ import annotations

from typing import Protocol

from storage.local import LocalWriter
from storage.s3_pipeline import MultipartPipeline
from tusd_py.core import errors
from tusd_py.core.models import UploadInfo


class WriterHost(Protocol):
    """What :class:`S3Writer` needs of its storage (``S3Storage``)."""

    threshold: int
    #: Seconds a flush waits for a part upload to end (see ``MultipartPipeline.flush``).
    stall: float

    async def switch_to_s3(self, info: UploadInfo, offset: int) -> MultipartPipeline:
        """Move a local-phase upload of ``offset`` bytes to S3; its pipeline."""

    async def release_pipeline(self, pipeline: MultipartPipeline) -> None:
        """Stop ``pipeline`` before the lock is released."""


class S3Writer:
    """Appends one request's bytes; starts local and switches to S3 when a
    local-phase upload passes the threshold."""

    def __init__(
        self,
        storage: WriterHost,
        info: UploadInfo,
        local: LocalWriter | None,
        pipeline: MultipartPipeline | None,
    ) -> None:
        self._storage = storage
        self._info = info
        self._local = local
        self._pipeline = pipeline
        self._written = 0
        self._closed = False

    async def write(self, chunk: bytes) -> None:
        if self._closed:
            raise errors.StorageError("write after close")
        if self._pipeline is None and self._info.offset + self._written > self._storage.threshold:
            await self._switch()
        if self._pipeline is not None:
            await self._pipeline.write(chunk)
            self._written += len(chunk)
            return
        assert self._local is not None
        before = self._local.written
        try:
            await self._local.write(chunk)
        finally:
            self._written += self._local.written - before
        if self._info.offset + self._written > self._storage.threshold:
            await self._switch()

    def publishable(self) -> int:
        """Bytes of this request another instance could continue from if this
        process died now: all written bytes, except in tail-in-bucket mode,
        where only those already in the bucket count (the rest is on this
        host's disk until :meth:`close` stores the tail)."""
        pipeline = self._pipeline
        if pipeline is None or pipeline.tail_key is None:
            return self._written
        return max(0, min(self._written, pipeline.shared_offset - self._info.offset))

    async def _switch(self) -> None:
        if self._local is not None:
            local, self._local = self._local, None
            await local.close()
        self._pipeline = await self._storage.switch_to_s3(self._info, self._info.offset + self._written)
        self._pipeline.attach()

    async def close(self) -> int:
        if self._closed:
            return self._written
        self._closed = True
        if self._local is not None:
            local, self._local = self._local, None
            await local.close()
        if self._pipeline is not None:
            pipeline = self._pipeline
            try:
                if pipeline.tail_key is not None and not pipeline.closed:
                    await pipeline.store_tail(self._storage.stall)
            finally:
                pipeline.detach()
                await self._storage.release_pipeline(pipeline)
        return self._written
