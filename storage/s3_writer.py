"""``S3Writer``: one request's bytes into an S3-relayed upload.

A local-phase upload is appended to its file until the offset passes the
threshold, then switched to S3 in two steps around the caller saving the new
``storage_meta`` (:class:`storage.base.MetaChanging`: :meth:`WriterHost.prepare_switch`,
the caller saves, :meth:`WriterHost.adopt_switch`); an S3-phase upload is written through the lock holder's
:class:`~storage.s3_pipeline.MultipartPipeline`, which :meth:`S3Writer.close`
hands back to the storage to be stopped before the lock is released.

Zero-copy: the writer is a :class:`tusd_py.core.splice.SpliceWriter`. In the
S3 phase a step goes into the part spool (:class:`storage.s3_splice.SpoolSplicer`);
in the local phase into the local file, but never past the threshold: the
switch to S3 needs the caller to save a new ``storage_meta`` between two
writes (:class:`storage.base.MetaChanging`), which the copying path does, so
:attr:`S3Writer.can_splice` turns False at the threshold and the copying
path takes the byte that crosses it.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from typing import Protocol

from storage.local import LocalWriter
from storage.s3_pipeline import MultipartPipeline
from storage.s3_splice import SpoolSplicer
from tusd_py.core import errors
from tusd_py.core.models import UploadInfo
from tusd_py.core.splice import SpliceStep


class WriterHost(Protocol):
    """What :class:`S3Writer` needs of its storage (``S3Storage``)."""

    threshold: int
    #: Seconds a flush waits for a part upload to end (see ``MultipartPipeline.flush``).
    stall: float
    #: Threads of the splice steps into the spool (:class:`SpoolSplicer`).
    splicer: concurrent.futures.Executor

    async def prepare_switch(self, info: UploadInfo, offset: int) -> Mapping[str, str]:
        """Copy a local-phase upload of ``offset`` bytes into a new multipart
        upload's spool; the ``storage_meta`` to save."""

    async def adopt_switch(self, info: UploadInfo, offset: int) -> MultipartPipeline:
        """The meta of ``info`` is saved: drop the local file; the pipeline."""

    async def release_pipeline(self, pipeline: MultipartPipeline) -> None:
        """Stop ``pipeline`` before the lock is released."""


class S3Writer:
    """Appends one request's bytes; starts local and switches to S3 when a
    local-phase upload passes the threshold (a
    :class:`storage.base.MetaChanging` writer)."""

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
        #: The meta of a prepared switch, until the caller saved it.
        self._pending: Mapping[str, str] | None = None
        #: Splices into the pipeline's spool (made at the first step).
        self._splicer: SpoolSplicer | None = None

    async def write(self, chunk: bytes) -> None:
        if self._closed:
            raise errors.StorageError("write after close")
        if self._pending is not None:
            raise errors.StorageError(f"the new storage_meta of upload {self._info.id} was not saved")
        if self._pipeline is not None:
            await self._pipeline.write(chunk)
            self._written += len(chunk)
            return
        if self._local is None:
            raise errors.StorageError(f"switching upload {self._info.id} to S3 failed; resume with HEAD")
        before = self._local.written
        try:
            await self._local.write(chunk)
        finally:
            self._written += self._local.written - before
        if self._info.offset + self._written > self._storage.threshold:
            local, self._local = self._local, None
            await local.close()
            self._pending = await self._storage.prepare_switch(self._info, self._info.offset + self._written)

    @property
    def can_splice(self) -> bool:
        """True while :meth:`splice_from` may be called: open, no switch
        pending, in the S3 phase with a running pipeline or in the local phase
        under the threshold (see module doc)."""
        if self._closed or self._pending is not None:
            return False
        if self._pipeline is not None:
            return not self._pipeline.closed
        return self._local is not None and self._local.can_splice and self._local_room() > 0

    def _local_room(self) -> int:
        """Bytes the local file may still take before the switch to S3."""
        return self._storage.threshold - (self._info.offset + self._written)

    async def splice_from(self, sock: int, count: int, *, budget: float, grace: float) -> SpliceStep:
        """One bounded splice step of up to ``count`` bytes from socket
        ``sock`` (see :class:`tusd_py.core.splice.SpliceWriter`): into the
        spool (S3 phase) or the local file, at most up to the threshold."""
        if self._closed or self._pending is not None:
            raise errors.StorageError(f"upload {self._info.id} cannot take spliced bytes now")
        if self._pipeline is not None:  # a stopped one refuses (taken over)
            if self._splicer is None or self._splicer.pipeline is not self._pipeline:
                self._close_splicer()
                self._splicer = SpoolSplicer(self._pipeline, self._storage.splicer)
            step = await self._splicer.splice_from(sock, count, budget=budget, grace=grace)
        elif self._local is not None and self._local_room() > 0:
            count = min(count, self._local_room())
            step = await self._local.splice_from(sock, count, budget=budget, grace=grace)
        else:
            raise errors.StorageError(f"upload {self._info.id} takes no spliced bytes past the S3 threshold")
        self._written += step.stored
        return step

    def _close_splicer(self) -> None:
        splicer, self._splicer = self._splicer, None
        if splicer is not None:
            splicer.close()

    def pending_meta(self) -> Mapping[str, str] | None:
        """The meta of a prepared switch to S3, to be saved (see :class:`storage.base.MetaChanging`)."""
        return self._pending

    async def meta_saved(self) -> None:
        """The switch's meta is saved: continue in S3."""
        meta, self._pending = self._pending, None
        if meta is None:
            return
        self._info = self._info.replace(storage_meta=meta)
        self._pipeline = await self._storage.adopt_switch(self._info, self._info.offset + self._written)
        self._pipeline.attach()

    def publishable(self) -> int:
        """Bytes of this request another instance could continue from if this
        process died now: all written bytes, except in tail-in-bucket mode,
        where only those already in the bucket count (the rest is on this
        host's disk until :meth:`close` stores the tail)."""
        pipeline = self._pipeline
        if pipeline is None or pipeline.tail_key is None:
            return self._written
        return max(0, min(self._written, pipeline.shared_offset - self._info.offset))

    async def close(self) -> int:
        if self._closed:
            return self._written
        self._closed = True
        self._close_splicer()
        if self._local is not None:
            local, self._local = self._local, None
            await local.close()
        # A switch still pending stays as prepared: the record may or may not
        # name it (a failed save), and both forms hold the bytes.
        self._pending = None
        if self._pipeline is not None:
            pipeline = self._pipeline
            try:
                if pipeline.tail_key is not None and not pipeline.closed:
                    await pipeline.store_tail(self._storage.stall)
            finally:
                pipeline.detach()
                await self._storage.release_pipeline(pipeline)
        return self._written
