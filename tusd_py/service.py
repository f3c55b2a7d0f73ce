"""``UploadService``: the tus protocol logic without HTTP.

It owns the order lock → load → validate → write → commit for every change,
and raises :mod:`tusd_py.errors` only. Handlers translate HTTP to calls here
and back; storages and state stores are reached through the
:class:`~tusd_py.composer.Composer`.

Offsets: the state store's offset is what the server holds durably. While a
body streams, the offset is published every ``progress_interval`` seconds
(checksummed bodies excepted: they are all-or-nothing) and once more when the
request ends, however it ends. A writer may bound what is published before
the request ends (:class:`storage.base.BoundedProgress`: bytes other instances
cannot read yet are not announced). A client resuming from a published offset
below what storage holds (an instance died between storing and publishing) is
served by rewinding the storage to that offset when it can
(:class:`storage.base.Rewindable`), else answered 409 with the corrected offset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storage.base import (
    BoundedProgress,
    Capability,
    ChunkWriter,
    Concatenatable,
    LengthDeferrable,
    Rewindable,
    Terminatable,
)
from tusd_py import errors, protocol
from tusd_py.checksum import Hasher, StagingFile, new_hasher
from tusd_py.composer import Composer
from tusd_py.config import Config
from tusd_py.events import EventSink, LogEventSink
from tusd_py.locking.base import Lock
from tusd_py.models import ConcatKind, Principal, UploadInfo, UploadState

log = logging.getLogger("tusd_py.app")

#: How many bytes of an upload's start are given to content inspectors.
SNIFF_BYTES = 8192
#: Seconds after its last byte before a HEAD/GET retries a failed completion.
FINISH_GRACE = 2.0


class ContentInspector(Protocol):
    """Looks at the first bytes of an upload (e.g. python-magic).

    Returns the detected MIME type (recorded on the upload) or None; raises
    :class:`errors.UnsupportedMediaType` to refuse the upload, which is then
    terminated and its bytes freed.
    """

    async def inspect(self, info: UploadInfo, head: bytes) -> str | None: ...


#: Returns the largest upload (bytes) a principal may create; 0 = unlimited.
SizeLimit = Callable[[Principal], int]


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """The parsed headers of one PATCH (or creation-with-upload) request."""

    offset: int
    content_length: int | None = None
    declared_length: int | None = None
    checksum: protocol.Checksum | None = None


def may_access(principal: Principal, info: UploadInfo) -> bool:
    """Owners and admins may see and change an upload."""
    return principal.is_admin or info.owner == principal.user


#: Seconds of the expiry window a PATCH may leave unrenewed at its start (at
#: most a tenth of ``server.expiration``); its progress renews it anyway.
RENEW_SLACK = 60.0


class UploadService:
    """tus operations on uploads; one instance per server process."""

    def __init__(
        self,
        *,
        config: Config,
        composer: Composer,
        events: EventSink | None = None,
        clock: Callable[[], float] = time.time,
        size_limit: SizeLimit | None = None,
        inspector: ContentInspector | None = None,
    ) -> None:
        self.config = config
        self.composer = composer
        self.state = composer.state
        self.events: EventSink = events or LogEventSink()
        self.clock = clock
        self._size_limit = size_limit
        self.inspector = inspector
        self.staging_dir = Path(config.server.data_dir) / "staging"

    # --- limits ------------------------------------------------------------

    def max_size_for(self, principal: Principal) -> int:
        """The largest upload ``principal`` may create (0 = unlimited)."""
        limits = [self.config.server.max_size]
        if self._size_limit is not None:
            limits.append(self._size_limit(principal))
        positive = [x for x in limits if x > 0]
        return min(positive) if positive else 0

    def _check_size(self, principal: Principal, length: int) -> None:
        limit = self.max_size_for(principal)
        if limit and length > limit:
            raise errors.MaxSizeExceeded(
                f"upload of {length} bytes exceeds the maximum size of {limit} bytes"
            )

    def _expiry(self, now: float) -> float:
        return now + self.config.server.expiration

    # --- lookups -------------------------------------------------------------

    async def load(self, upload_id: str) -> UploadInfo:
        """The record of ``upload_id`` regardless of owner.

        Raises :class:`errors.UploadNotFound` for malformed or unknown ids and
        :class:`errors.UploadGone` for expired ones.
        """
        if not protocol.is_valid_upload_id(upload_id):
            raise errors.UploadNotFound()
        info = await self.state.get(upload_id)
        if info is None:
            raise errors.UploadNotFound()
        if info.state is UploadState.EXPIRED or (
            info.state is UploadState.UPLOADING
            and info.expires_at is not None
            and info.expires_at < self.clock()
        ):
            raise errors.UploadGone()
        return info

    async def get(self, principal: Principal, upload_id: str) -> UploadInfo:
        """The record for HEAD/GET by ``principal``.

        Others' uploads are reported as not found (no existence leak). A final
        upload whose partials have all finished is assembled first.
        """
        info = await self.load(upload_id)
        if not may_access(principal, info):
            raise errors.UploadNotFound()
        if info.concat is ConcatKind.FINAL and not info.is_complete:
            info = await self._try_assemble(info)
        elif (
            info.state is UploadState.UPLOADING
            and info.length is not None
            and info.offset == info.length
            and self.clock() - info.updated_at > FINISH_GRACE
        ):
            info = await self._retry_finish(info)
        return info

    async def _retry_finish(self, info: UploadInfo) -> UploadInfo:
        """Finish an upload whose last byte arrived but whose completion failed
        (e.g. S3 was unreachable). Only tried :data:`FINISH_GRACE` seconds after
        the last offset change, so a PATCH still finishing is not asked to
        release its lock; a request holding the lock finishes it itself."""
        lock = self.composer.locker.new_lock(info.id)
        try:
            await lock.acquire(0.05, lambda: None)
        except errors.LockTimeout:
            return info
        try:
            current = await self.load(info.id)
            if current.state is UploadState.UPLOADING and current.offset == current.length:
                current = await self._finish(current)
            return current
        finally:
            await lock.release()

    # --- creation ------------------------------------------------------------

    async def create(
        self,
        principal: Principal,
        *,
        length: int | None,
        metadata_raw: str = "",
        partial: bool = False,
        visibility: str | None = None,
    ) -> UploadInfo:
        """Create an upload of ``length`` bytes (None = deferred).

        Raises :class:`errors.MaxSizeExceeded` above the principal's limit.
        A zero-length upload is complete at once.
        """
        if length is not None:
            self._check_size(principal, length)
        elif not self.composer.has(Capability.DECLARE_LENGTH):
            raise errors.InvalidLength("this server cannot defer upload lengths")
        now = self.clock()
        info = UploadInfo(
            id=protocol.new_upload_id(),
            owner=principal.user,
            length=length,
            metadata_raw=metadata_raw,
            concat=ConcatKind.PARTIAL if partial else ConcatKind.NONE,
            concat_raw="partial" if partial else "",
            storage=self.composer.choose(length),
            visibility=visibility or "private",
            created_at=now,
            updated_at=now,
            expires_at=self._expiry(now),
        )
        storage = self.composer.storage(info.storage)
        meta = await storage.create(info)
        info = info.replace(storage_meta=dict(meta))
        await self.state.create(info)
        self.events.emit("upload.created", info)
        if length == 0:
            info = await self._finish(info)
        return info

    async def create_final(
        self,
        principal: Principal,
        *,
        partial_ids: Sequence[str],
        concat_raw: str,
        metadata_raw: str = "",
        visibility: str | None = None,
    ) -> UploadInfo:
        """Create the final upload of a concatenation.

        Every partial must exist, belong to ``principal`` (else 404) and be a
        partial upload (else 400). If all are finished the final is assembled
        now; otherwise (concatenation-unfinished) on a later HEAD/GET.
        """
        if not self.composer.has(Capability.CONCATENATE):
            raise errors.InvalidConcat("this server does not support concatenation")
        partials = []
        for partial_id in partial_ids:
            try:
                part = await self.load(partial_id)
            except errors.UploadGone:
                raise errors.InvalidConcat(f"partial upload {partial_id} has expired") from None
            except errors.UploadNotFound:
                raise errors.UploadNotFound(f"partial upload {partial_id} not found") from None
            if not may_access(principal, part):
                raise errors.UploadNotFound(f"partial upload {partial_id} not found")
            if part.concat is not ConcatKind.PARTIAL:
                raise errors.InvalidConcat(f"upload {partial_id} is not a partial upload")
            partials.append(part)
        lengths = [p.length for p in partials]
        total = sum(x for x in lengths if x is not None) if None not in lengths else None
        if total is not None:
            self._check_size(principal, total)
        now = self.clock()
        info = UploadInfo(
            id=protocol.new_upload_id(),
            owner=principal.user,
            length=total,
            metadata_raw=metadata_raw,
            concat=ConcatKind.FINAL,
            concat_raw=concat_raw,
            partials=tuple(partial_ids),
            storage=self.composer.choose(total),
            visibility=visibility or "private",
            created_at=now,
            updated_at=now,
            expires_at=self._expiry(now),
        )
        storage = self.composer.storage(info.storage)
        meta = await storage.create(info)
        info = info.replace(storage_meta=dict(meta))
        await self.state.create(info)
        self.events.emit("upload.created", info)
        if all(p.is_complete for p in partials):
            info = await self._assemble(info, partials)
        return info

    async def _try_assemble(self, final: UploadInfo) -> UploadInfo:
        """Assemble ``final`` if all its partials are complete (lazily)."""
        partials = []
        for partial_id in final.partials:
            part = await self.state.get(partial_id)
            if part is None or part.state is UploadState.EXPIRED:
                return final
            if not part.is_complete:
                if final.length is None:
                    lengths = [
                        p.length if p else None for p in [await self.state.get(i) for i in final.partials]
                    ]
                    if None not in lengths:
                        final = await self.state.update(
                            final.id, {"length": sum(x for x in lengths if x is not None)}
                        )
                return final
            partials.append(part)
        lock = self.composer.locker.new_lock(final.id)
        await lock.acquire(self.config.server.lock_timeout, lambda: None)
        try:
            current = await self.state.get(final.id)
            if current is None:
                raise errors.UploadNotFound()
            if current.is_complete:
                return current
            return await self._assemble(current, partials)
        finally:
            await lock.release()

    async def _assemble(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> UploadInfo:
        storage = self.composer.storage(final.storage)
        assert isinstance(storage, Concatenatable)
        total = sum(p.length or 0 for p in partials)
        meta = await storage.concatenate(final, partials)
        now = self.clock()
        if final.length is None:
            final = await self.state.update(final.id, {"length": total})
        final = await self.state.update(final.id, {"storage_meta": dict(meta), "updated_at": now})
        final = await self.state.commit_offset(
            final.id, final.offset, total, updated_at=now, expires_at=final.expires_at
        )
        return await self._finish(final)

    async def _finish(self, info: UploadInfo) -> UploadInfo:
        storage = self.composer.storage(info.storage)
        meta = await storage.finish(info)
        info = await self.state.update(
            info.id,
            {
                "state": UploadState.COMPLETE,
                "storage_meta": dict(meta),
                "expires_at": None,
                "updated_at": self.clock(),
            },
        )
        self.events.emit("upload.finished", info)
        return info

    # --- appending -------------------------------------------------------------

    async def begin_append(
        self,
        principal: Principal,
        upload_id: str,
        request: AppendRequest,
        on_release_requested: Callable[[], None],
    ) -> AppendSession:
        """Lock the upload and validate a PATCH before its body is read.

        Raises 404/410 (unknown, others', expired), 403 (final upload), 409
        (offset), 400/413 (length declaration, sizes), 423 (lock timeout).
        The returned session holds the lock until committed or aborted.
        """
        info = await self.load(upload_id)
        if not may_access(principal, info):
            raise errors.UploadNotFound()
        if info.concat is ConcatKind.FINAL:
            raise errors.ModifyFinal()
        lock = self.composer.locker.new_lock(upload_id)
        await lock.acquire(self.config.server.lock_timeout, on_release_requested)
        try:
            info = await self._prepare_append(principal, upload_id, request)
        except BaseException:
            await lock.release()
            raise
        session = AppendSession(self, principal, info, lock, request)
        try:
            await session.open()
        except BaseException:
            await session.abort()
            raise
        return session

    async def _prepare_append(
        self, principal: Principal, upload_id: str, request: AppendRequest
    ) -> UploadInfo:
        info = await self.load(upload_id)  # fresh, under the lock
        storage = self.composer.storage(info.storage)
        if not info.is_complete:
            held = await storage.durable_offset(info)
            if (
                held > info.offset
                and request.offset == info.offset
                and isinstance(storage, Rewindable)
                and await storage.rewind(info, info.offset)
            ):
                log.warning(
                    "upload %s held %d bytes past its published offset %d; rewound to it",
                    info.id,
                    held - info.offset,
                    info.offset,
                    extra={"upload_id": info.id, "offset": info.offset},
                )
                held = info.offset
            if held != info.offset:
                log.warning(
                    "offset of %s reconciled from %d to %d",
                    info.id,
                    info.offset,
                    held,
                    extra={"upload_id": info.id, "offset": held},
                )
                info = await self.state.reset_offset(info.id, held)
        if request.offset != info.offset:
            raise errors.OffsetMismatch(
                f"Upload-Offset is {request.offset} but the upload's offset is {info.offset}; "
                "send HEAD to resume from the right offset"
            )
        if request.declared_length is not None:
            if info.length is not None:
                if request.declared_length != info.length:
                    raise errors.InvalidLength("Upload-Length is already set and cannot change")
            else:
                if request.declared_length < info.offset:
                    raise errors.InvalidLength(
                        f"Upload-Length {request.declared_length} is below the offset {info.offset}"
                    )
                self._check_size(principal, request.declared_length)
                # Refuse an oversized body before the length is recorded: a
                # refused request must leave the upload as it was.
                declared = info.replace(length=request.declared_length)
                if request.content_length is not None:
                    if request.content_length > request.declared_length - info.offset:
                        raise self._overflow_error(principal, declared, request.content_length)
                assert isinstance(storage, LengthDeferrable)
                meta = await storage.declare_length(info, request.declared_length)
                info = await self.state.update(
                    info.id, {"length": request.declared_length, "storage_meta": dict(meta)}
                )
        remaining = self.remaining(principal, info)
        if request.content_length is not None and remaining is not None:
            if request.content_length > remaining:
                raise self._overflow_error(principal, info, request.content_length)
        if not info.is_complete:
            # Renew the expiry as the body starts: the sweeper must never
            # expire (or ask to release) an upload a live request is writing,
            # even a checksummed one that publishes nothing until it ends.
            # A record renewed within the last RENEW_SLACK of the window is
            # left as it is (one write less per PATCH in a busy upload).
            now = self.clock()
            expires = self._expiry(now)
            slack = min(RENEW_SLACK, self.config.server.expiration / 10)
            if info.expires_at is None or info.expires_at < expires - slack:
                info = await self.state.update(info.id, {"expires_at": expires, "updated_at": now})
        return info

    def remaining(self, principal: Principal, info: UploadInfo) -> int | None:
        """Bytes this upload may still receive (None = unbounded)."""
        if info.length is not None:
            return info.length - info.offset
        limit = self.max_size_for(principal)
        return limit - info.offset if limit else None

    def _overflow_error(self, principal: Principal, info: UploadInfo, size: int) -> errors.TusError:
        if info.length is not None:
            return errors.UploadSizeExceeded(
                f"{size} more bytes at offset {info.offset} would exceed the upload length {info.length}"
            )
        return errors.MaxSizeExceeded(
            f"upload would exceed the maximum size of {self.max_size_for(principal)} bytes"
        )

    # --- termination -------------------------------------------------------------

    async def terminate(self, principal: Principal, upload_id: str) -> None:
        """Delete an upload and its bytes (asks a running PATCH to stop first)."""
        info = await self.load(upload_id)
        if not may_access(principal, info):
            raise errors.UploadNotFound()
        storage = self.composer.storage(info.storage)
        if not isinstance(storage, Terminatable):
            raise errors.MethodNotAllowed("this server does not support termination")
        lock = self.composer.locker.new_lock(upload_id)
        await lock.acquire(self.config.server.lock_timeout, lambda: None)
        try:
            info = await self.load(upload_id)
            await storage.terminate(info)
            await self.state.delete(upload_id)
        finally:
            await lock.release()
        self.events.emit("upload.terminated", info)

    async def discard_rejected(self, info: UploadInfo, reason: str) -> None:
        """Free an upload refused by an inspector (lock already held)."""
        storage = self.composer.storage(info.storage)
        if isinstance(storage, Terminatable):
            await storage.terminate(info)
        await self.state.delete(info.id)
        self.events.emit("upload.failed", info, reason)

    # --- expiry --------------------------------------------------------------------

    async def sweep_expired(self, batch: int = 100) -> int:
        """Remove expired incomplete uploads (data, parts, S3 multipart) and
        leave tombstones answering 410; forget old tombstones. Returns how
        many uploads expired. Uploads locked by a live request are skipped."""
        now = self.clock()
        expired = 0
        for info in await self.state.list_expired(now, batch):
            lock = self.composer.locker.new_lock(info.id)
            try:
                await lock.acquire(0.05, lambda: None)
            except errors.LockTimeout:
                continue
            try:
                current = await self.state.get(info.id)
                if current is None or current.state is not UploadState.UPLOADING:
                    continue
                if current.expires_at is None or current.expires_at >= now:
                    continue
                storage = self.composer.storage(current.storage)
                if isinstance(storage, Terminatable):
                    await storage.terminate(current)
                await self.state.delete_parts(current.id)
                tomb = await self.state.update(
                    current.id,
                    {"state": UploadState.EXPIRED, "updated_at": now, "expires_at": None},
                )
                expired += 1
                self.events.emit("upload.expired", tomb)
            except errors.TusError:
                log.exception("could not expire upload %s", info.id)
            finally:
                await lock.release()
        await self.state.purge_tombstones(now - self.config.server.tombstone_ttl, batch)
        await self.state.purge_idempotency_keys(now, batch)
        return expired


class AppendSession:
    """One request's body being appended to one locked upload.

    ``write`` is called per received chunk, then exactly one of ``commit``
    (body complete) or ``abort`` (connection lost, interrupted, timed out,
    error) ends the session, publishes the offset and releases the lock.
    """

    def __init__(
        self,
        service: UploadService,
        principal: Principal,
        info: UploadInfo,
        lock: Lock,
        request: AppendRequest,
    ) -> None:
        self.service = service
        self.principal = principal
        self.info = info
        self.start = info.offset
        self._committed = info.offset
        self._lock = lock
        self._remaining = service.remaining(principal, info)
        self._checksum = request.checksum
        self._hasher: Hasher | None = None
        self._staging: StagingFile | None = None
        self._writer: ChunkWriter | None = None
        #: The writer when it bounds what may be published mid-request (checked once).
        self._bounded: BoundedProgress | None = None
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
    def offset(self) -> int:
        """Bytes of the upload held after this session's writes so far."""
        return self.start + self.received

    async def open(self) -> None:
        storage = self.service.composer.storage(self.info.storage)
        if self._checksum is not None:
            self._hasher = new_hasher(self._checksum.algorithm)
            self._staging = StagingFile(self.service.staging_dir)
        self._writer = await storage.open_writer(self.info)
        self._bounded = self._writer if isinstance(self._writer, BoundedProgress) else None
        self._next_publish = asyncio.get_running_loop().time() + self._interval

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk``. Raises 413 past the length/limit (the part that
        fits is kept), 415 from an inspector, or a backend error."""
        if self._closed:
            return
        if self._failed is not None:
            raise self._failed
        async with self._mutex:
            if self._closed:
                return
            try:
                await self._write_locked(chunk)
            except errors.TusError as exc:
                self._failed = exc
                raise

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
            else:
                assert self._writer is not None
                self._check_lock()
                await self._writer.write(chunk)
            self.received += len(chunk)
        if overflow:
            raise self.service._overflow_error(self.principal, self.info, self.received + 1)
        if self._staging is None and chunk:
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
            expires_at=self.service._expiry(now),
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
                        assert self._writer is not None
                        self._check_lock()
                        await self._staging.replay_into(self._writer)
                info = await self._settle()
                if self._failed is not None:
                    raise self._failed
                return info
            finally:
                await self._release()

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
            self.info = await self.service._finish(info)
        return self.info

    def _stop_publishing(self) -> None:
        self._closed = True
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
