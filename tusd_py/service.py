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

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from storage.base import (
    Capability,
    LengthDeferrable,
    Rewindable,
    Terminatable,
)
from tusd_py import errors, protocol
from tusd_py.append import SNIFF_BYTES, AppendRequest, AppendSession
from tusd_py.checksum import FileDigests
from tusd_py.composer import Composer
from tusd_py.config import Config
from tusd_py.events import EventSink, LogEventSink
from tusd_py.models import ConcatKind, Principal, UploadInfo, UploadState
from tusd_py.partials import assemble, is_expired, keeps_expiry, load_partials, try_assemble
from tusd_py.reconcile import catch_up
from tusd_py.release import ReleaseGate

log = logging.getLogger("tusd_py.app")

__all__ = ["SNIFF_BYTES", "AppendRequest", "AppendSession", "ContentInspector", "UploadService", "may_access"]

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

#: Asked before an upload is created (tusd's pre-create hook): returns the record to
#: create (metadata possibly rewritten) or raises a TusError to refuse it.
PreCreate = Callable[[Principal, UploadInfo], Awaitable[UploadInfo]]


def may_access(principal: Principal, info: UploadInfo) -> bool:
    """Owners and admins may see and change an upload."""
    return principal.is_admin or info.owner == principal.user


def offset_mismatch(sent: int, offset: int) -> errors.OffsetMismatch:
    """The 409 for a PATCH at ``sent`` when the upload holds ``offset`` bytes."""
    return errors.OffsetMismatch(
        f"Upload-Offset is {sent} but the upload's offset is {offset}; "
        "send HEAD to resume from the right offset"
    )


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
        self.pre_create: PreCreate | None = None
        self.staging_dir = Path(config.server.data_dir) / "staging"
        #: Running whole-upload hashes of checksummed uploads (this process only).
        self.digests = FileDigests()

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
        if is_expired(info, self.clock()):
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
            info = await try_assemble(self, info)
        elif (
            info.state is UploadState.UPLOADING
            and info.length is not None
            and info.offset == info.length
            and self.clock() - info.updated_at > FINISH_GRACE
        ):
            info = await self._retry_finish(info)
        else:
            info = await catch_up(self.composer, info)  # a dead writer's unpublished bytes
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
        if self.pre_create is not None:
            info = await self.pre_create(principal, info)
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
        partials = await load_partials(self, principal, partial_ids)
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
            info = await assemble(self, info, partials)
        return info

    async def _finish(self, info: UploadInfo, checksum: str | None = None) -> UploadInfo:
        """Mark ``info`` complete, recording its whole-upload ``checksum`` when
        known. A complete upload no longer expires, except a partial upload,
        which keeps the expiry until assembled (:mod:`tusd_py.partials`)."""
        storage = self.composer.storage(info.storage)
        meta = await storage.finish(info)
        now = self.clock()
        changes: dict[str, object] = {
            "state": UploadState.COMPLETE,
            "storage_meta": dict(meta),
            "expires_at": self._expiry(now) if info.concat is ConcatKind.PARTIAL else None,
            "updated_at": now,
        }
        if checksum is not None:
            changes["checksum"] = checksum
        info = await self.state.update(info.id, changes)
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

        When another request holds the lock, a request that would be refused
        anyway (no access, wrong offset against the record) is refused without
        asking the holder to release; otherwise the holder is asked, and is cut
        only once its client has been idle for ``server.release_idle``
        (:class:`~tusd_py.release.ReleaseGate`; ``on_release_requested`` is
        this request's own reaction when it is the holder asked to release).
        """
        info = await self.load(upload_id)
        if not may_access(principal, info):
            raise errors.UploadNotFound()
        if info.concat is ConcatKind.FINAL:
            raise errors.ModifyFinal()
        lock = self.composer.locker.new_lock(upload_id)
        gate = ReleaseGate(on_release_requested, self.config.server.release_idle)
        if not await lock.try_acquire(gate.requested):
            self._refuse_before_release(principal, info, request)
            await lock.acquire(self.config.server.lock_timeout, gate.requested)
        gate.held_by(lock)
        try:
            info = await self._prepare_append(principal, upload_id, request)
        except BaseException:
            gate.close()
            await lock.release()
            raise
        session = AppendSession(self, principal, info, lock, request, gate)
        try:
            await session.open()
        except BaseException:
            await session.abort()
            raise
        return session

    def _refuse_before_release(self, principal: Principal, info: UploadInfo, request: AppendRequest) -> None:
        """Raise what the record already says a PATCH will get (409 offset,
        400 length change, 413 too long), so that it never disturbs the
        request holding the upload. The full checks run again under the lock."""
        if request.offset != info.offset:
            raise offset_mismatch(request.offset, info.offset)
        if info.length is None:
            return
        if request.declared_length is not None and request.declared_length != info.length:
            raise errors.InvalidLength("Upload-Length is already set and cannot change")
        if request.content_length is not None and request.content_length > info.length - info.offset:
            raise self._overflow_error(principal, info, request.content_length)

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
            raise offset_mismatch(request.offset, info.offset)
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
        """Remove expired incomplete uploads and unassembled complete partial
        uploads (data, parts, S3 multipart) and
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
                if current is None or not keeps_expiry(current):
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
