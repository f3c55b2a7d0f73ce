"""``AppendSession``: one request body appended to one locked upload.

Split from :mod:`tusd_py.core.service` (which creates sessions in
:meth:`~tusd_py.core.service.Uploads.begin_append`); see that module for the
offset-publishing contract.

The session alone writes the upload record while its body streams: offsets,
and the ``storage_meta`` a writer changes mid-request
(:class:`storage.base.MetaChanging`), saved before any offset that depends
on it is published.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from storage.base import BoundedProgress, ChunkWriter, MetaChanging
from storage.local import os_error
from tusd_py.core import errors, protocol
from tusd_py.core.checksum import Hasher, StagingFile, digest_label, new_hasher
from tusd_py.core.models import Principal, UploadInfo
from tusd_py.core.release import ReleaseGate
from tusd_py.core.splice import SpliceStep, SpliceWriter
from tusd_py.core.uploads import Uploads
from tusd_py.locking.base import Lock

log = logging.getLogger("tusd_py.app")

#: How many bytes of an upload's start are given to content inspectors.
SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """The parsed headers of one PATCH (or creation-with-upload) request."""

    offset: int
    content_length: int | None = None
    declared_length: int | None = None
    checksum: protocol.Checksum | None = None


class AppendSession:
    """One request's body being appended to one locked upload.

    ``write`` is called per received chunk, then exactly one of ``commit``
    (body complete) or ``abort`` (connection lost, interrupted, timed out,
    error) ends the session, publishes the offset and releases the lock.
    """

    def __init__(
        self,
        service: Uploads,
        principal: Principal,
        info: UploadInfo,
        lock: Lock,
        request: AppendRequest,
        gate: ReleaseGate | None = None,
    ) -> None:
        self.service = service
        self.principal = principal
        self.info = info
        self.start = info.offset
        self._committed = info.offset
        self._lock = lock
        self._gate = gate
        self._remaining = service.remaining(principal, info)
        self._checksum = request.checksum
        self._hasher: Hasher | None = None
        self._staging: StagingFile | None = None
        #: Running hash of the whole upload through this body (None: unknown).
        self._file_hasher: Hasher | None = None
        self._file_checksum: str | None = None
        self._writer: ChunkWriter | None = None
        #: The writer when it bounds what may be published mid-request (checked once).
        self._bounded: BoundedProgress | None = None
        #: The writer when it may change the upload's storage_meta (checked once).
        self._changing: MetaChanging | None = None
        #: The writer when it can splice (checked once: an isinstance against a
        #: runtime-checkable Protocol costs microseconds, and it is asked per step).
        self._splicer: SpliceWriter | None = None
        self.received = 0
        self._closed = False
        self._failed: errors.TusError | None = None
        self._sniff = info.offset == 0 and service.inspector is not None
        self._interval = service.config.server.progress_interval
        self._next_publish = 0.0
        self._publish_timer: asyncio.TimerHandle | None = None
        self._publish_task: asyncio.Task[None] | None = None
        self._mutex = asyncio.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def lock_backend_failing(self) -> bool:
        """True if the lock is being given up because its backend failed."""
        return self._lock.backend_failing()

    @property
    def sniffing(self) -> bool:
        """True while the upload's first bytes are still to be inspected (they
        must come through :meth:`write`)."""
        return self._sniff

    @property
    def offset(self) -> int:
        """Bytes of the upload held after this session's writes so far."""
        return self.start + self.received

    async def open(self) -> None:
        storage = self.service.composer.storage(self.info.storage)
        if self._checksum is not None:
            self._hasher = new_hasher(self._checksum.algorithm)
            self._staging = StagingFile(self.service.staging_dir)
            self._file_hasher = self.service.digests.resume(
                self.info.id, self._checksum.algorithm, self.info.offset
            )
        else:
            self.service.digests.forget(self.info.id)  # a chunk no client digest covers
        self._writer = await storage.open_writer(self.info)
        self._bounded = self._writer if isinstance(self._writer, BoundedProgress) else None
        self._changing = self._writer if isinstance(self._writer, MetaChanging) else None
        self._splicer = self._writer if isinstance(self._writer, SpliceWriter) else None
        self._next_publish = asyncio.get_running_loop().time() + self._interval

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``. Raises 413 past the length/limit (the part that
        fits is kept), 415 from an inspector, or a backend error."""
        if self._closed:
            return
        if self._failed is not None:
            raise self._failed
        if self._gate is not None:
            self._gate.begin_write()
        try:
            async with self._mutex:
                if self._closed:
                    return
                try:
                    await self._write_locked(chunk)
                except errors.TusError as exc:
                    self._failed = exc
                    raise
        finally:
            if self._gate is not None:
                self._gate.end_write()

    async def _write_locked(self, chunk: bytes) -> None:
        overflow = False
        if self._remaining is not None and self.received + len(chunk) > self._remaining:
            chunk = chunk[: self._remaining - self.received]
            overflow = True
        if self._sniff and chunk:
            await self._inspect(chunk)
        if chunk:
            if self._staging is not None:
                assert self._hasher is not None
                self._staging.write(chunk)
                self._hasher.update(chunk)
                if self._file_hasher is not None:
                    self._file_hasher.update(chunk)
            else:
                self._check_lock()
                await self._store(chunk)
            self.received += len(chunk)
        if overflow:
            raise self.service.overflow_error(self.principal, self.info, self.received + 1)
        if self._staging is None and chunk:
            await self._progress()

    async def _store(self, chunk: bytes) -> None:
        """Append ``chunk`` to the storage; a ``storage_meta`` the writer
        changed is saved (durably) and confirmed before anything else, so
        no offset that depends on it is published first."""
        assert self._writer is not None
        await self._writer.write(chunk)
        if self._changing is not None:
            meta = self._changing.pending_meta()
            if meta is not None:
                self.info = await self.service.state.update(self.info.id, {"storage_meta": dict(meta)})
                await self._changing.meta_saved()

    async def _progress(self) -> None:
        """Bytes were stored: publish them now or when the interval is up."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._next_publish:
            self._next_publish = now + self._interval
            await self._publish()
        elif self._publish_timer is None:
            # Bytes not yet published: publish them when the interval is
            # up even if no further chunk arrives (a stalled body must not
            # hide what the server holds from HEAD).
            self._publish_timer = loop.call_at(self._next_publish, self._publish_due)

    def can_splice(self) -> bool:
        """True if the rest of the body may bypass :meth:`write` through
        :meth:`append_spliced`: open, no digest to compute, the first bytes
        already inspected, and a writer able to splice now (local storage,
        the S3 part spool)."""
        writer = self._splicer
        return (
            not self._closed
            and self._failed is None
            and self._staging is None
            and not self._sniff
            and writer is not None
            and writer.can_splice
        )

    async def append_spliced(self, sock: int, count: int, *, budget: float, grace: float) -> SpliceStep:
        """Append up to ``count`` body bytes straight from socket ``sock``
        (one bounded step, see :meth:`storage.local.LocalWriter.splice_from`),
        with the same bookkeeping as :meth:`write`: lock checked, bytes
        counted, offset published; never more than the upload's remaining
        bytes. Raises only before any byte moved (lost lock, earlier
        failure); a failure after (file error, publishing) is recorded in
        :attr:`failure` (raised by :meth:`commit`) and the step returned."""
        if self._failed is not None:
            raise self._failed
        async with self._mutex:
            writer = self._splicer
            if self._closed or writer is None:
                return SpliceStep(0, 0, eof=True)
            if self._remaining is not None:
                count = min(count, self._remaining - self.received)
            if count <= 0:
                return SpliceStep(0, 0, eof=True)
            try:
                self._check_lock()
                step = await writer.splice_from(sock, count, budget=budget, grace=grace)
            except errors.TusError as exc:
                self._failed = exc
                raise
            self.received += step.stored
            if step.error is not None:
                self._failed = os_error("write", step.error)
            if self._gate is not None and step.stored:
                self._gate.begin_write()  # bytes arrived: the client is not idle
                self._gate.end_write()
            if step.stored:
                try:
                    await self._progress()
                except errors.TusError as exc:
                    self._failed = self._failed or exc
            return step

    @property
    def failure(self) -> errors.TusError | None:
        """The error that stopped this session's writes, if any."""
        return self._failed

    def _publish_due(self) -> None:
        self._publish_timer = None
        if not self._closed and self._publish_task is None:
            self._publish_task = asyncio.ensure_future(self._publish_pending())

    async def _publish_pending(self) -> None:
        """Publish bytes written since the last publication (timer path)."""
        try:
            async with self._mutex:
                if self._closed:
                    return
                self._next_publish = asyncio.get_running_loop().time() + self._interval
                try:
                    await self._publish()
                except errors.TusError as exc:
                    # The request's end publishes again (and reports failures).
                    log.warning("publishing the offset of %s failed: %s", self.info.id, exc.message)
        finally:
            self._publish_task = None
        # A bounding writer (S3 tail in the bucket) may not have let every byte
        # be published yet: look again next interval, until all are or we close.
        if not self._closed and self._publish_timer is None and self.start + self.received > self._committed:
            loop = asyncio.get_running_loop()
            self._publish_timer = loop.call_at(self._next_publish, self._publish_due)

    def _check_lock(self) -> None:
        """Refuse to write once the lock may have been taken over (a lease
        that ran out unrenewed, e.g. Redis unreachable or this process stalled)."""
        if not self._lock.still_held():
            raise errors.StateStoreError(
                "lost the upload's lock (the lock service did not answer in time); resume with HEAD",
                retry_after=2,
            )

    async def _inspect(self, chunk: bytes) -> None:
        """Give the first bytes to the inspector before they are stored; a
        refusal terminates the upload (bytes freed, lock released)."""
        assert self.service.inspector is not None
        self._sniff = False
        try:
            mime = await self.service.inspector.inspect(self.info, chunk[:SNIFF_BYTES])
        except errors.UnsupportedMediaType as exc:
            await self._reject_locked(exc)
            raise
        if mime:
            self.info = await self.service.state.update(self.info.id, {"mime": mime})

    async def _publish(self) -> None:
        """Publish the offset: every byte received, or while the writer is
        open and bounds its progress, what it allows (never going back)."""
        offset = self.start + self.received
        if self._bounded is not None and self._writer is not None:
            offset = self.start + min(self.received, self._bounded.publishable())
        if offset <= self._committed:
            return
        now = self.service.clock()
        self.info = await self.service.state.commit_offset(
            self.info.id,
            self._committed,
            offset,
            updated_at=now,
            expires_at=self.service.expiry(now),
        )
        self._committed = offset
        self.service.events.emit("upload.progress", self.info)

    async def commit(self) -> UploadInfo:
        """The body is complete: verify, store, publish, finish if done.

        Raises the error that stopped an earlier ``write`` (after saving what
        was stored) or :class:`errors.ChecksumMismatch` (nothing stored)."""
        async with self._mutex:
            if self._closed:
                raise errors.UploadInterrupted()
            try:
                if self._failed is None and self._staging is not None:
                    assert self._hasher is not None and self._checksum is not None
                    if self._hasher.digest() != self._checksum.digest:
                        self._failed = errors.ChecksumMismatch(
                            f"{self._checksum.algorithm} of the {self._staging.size} bytes "
                            "received does not match Upload-Checksum; the chunk was discarded"
                        )
                    else:
                        self._check_lock()
                        await self._staging.replay_into(_Storing(self))
                        self._file_checksum = self._whole_digest(self._checksum.algorithm)
                info = await self._settle()
                if self._failed is None and self._checksum is not None:
                    self._keep_running_digest(self._checksum.algorithm)
                if self._failed is not None:
                    raise self._failed
                return info
            finally:
                await self._release()

    def _whole_digest(self, algorithm: str) -> str | None:
        """The whole upload's digest when this verified chunk ends it (recorded
        by ``_finish``), else None."""
        assert self._staging is not None
        if self._file_hasher is None or self.info.length is None:
            return None
        if self.start + self._staging.size != self.info.length:
            return None
        return digest_label(algorithm, self._file_hasher)

    def _keep_running_digest(self, algorithm: str) -> None:
        """After a verified chunk was stored *and published*: keep the running
        hash for the next PATCH (only a published offset may be resumed from)."""
        digests = self.service.digests
        if self._file_hasher is None or self.info.is_complete:
            digests.forget(self.info.id)
        elif self.received and self._committed == self.start + self.received:
            digests.advance(self.info.id, algorithm, self._committed, self._file_hasher)

    async def abort(self) -> UploadInfo:
        """End early: keep what was received (unless checksummed), publish."""
        async with self._mutex:
            if self._closed:
                return self.info
            try:
                try:
                    return await self._settle()
                except errors.TusError as exc:
                    log.warning("saving interrupted upload %s failed: %s", self.info.id, exc.message)
                    return self.info
            finally:
                await self._release()

    async def _settle(self) -> UploadInfo:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            self.received = await writer.close()
        await self._publish()
        info = self.info
        if info.length is not None and self._committed == info.length and not info.is_complete:
            self.info = await self.service.finish(info, checksum=self._file_checksum)
        return self.info

    def _stop_publishing(self) -> None:
        self._closed = True
        if self._gate is not None:
            self._gate.close()
        if self._publish_timer is not None:
            self._publish_timer.cancel()
            self._publish_timer = None

    async def _release(self) -> None:
        self._stop_publishing()
        if self._staging is not None:
            self._staging.discard()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                await writer.close()
            except errors.TusError:
                pass
        await self._lock.release()

    async def _reject_locked(self, error: errors.TusError) -> None:
        self._stop_publishing()
        if self._staging is not None:
            self._staging.discard()
        try:
            if self._writer is not None:
                writer, self._writer = self._writer, None
                await writer.close()
            await self.service.discard_rejected(self.info, error.message)
        finally:
            await self._lock.release()


class _Storing:
    """A session's writer as :meth:`StagingFile.replay_into` sees it: every
    block goes through :meth:`AppendSession._store`."""

    def __init__(self, session: AppendSession) -> None:
        self._session = session

    async def write(self, chunk: bytes) -> None:
        await self._session._store(chunk)

    async def close(self) -> int:
        return 0
