"""Admitting a PATCH: lock the upload and validate the request before its body
is read (offset, length declaration, sizes), reconciling the record with the
storage's durable bytes under the lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from storage.base import LengthDeferrable, Rewindable
from tusd_py.core import errors
from tusd_py.core.append import AppendRequest, AppendSession
from tusd_py.core.models import ConcatKind, Principal, UploadInfo, may_access
from tusd_py.core.release import ReleaseGate
from tusd_py.core.uploads import Uploads, offset_mismatch

log = logging.getLogger("tusd_py.app")

#: Seconds of the expiry window a PATCH may leave unrenewed at its start (at
#: most a tenth of ``server.expiration``); its progress renews it anyway.
RENEW_SLACK = 60.0


async def admit_append(
    uploads: Uploads,
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
    (:class:`~tusd_py.core.release.ReleaseGate`; ``on_release_requested`` is
    this request's own reaction when it is the holder asked to release).
    """
    info = await uploads.load(upload_id)
    if not may_access(principal, info):
        raise errors.UploadNotFound()
    if info.concat is ConcatKind.FINAL:
        raise errors.ModifyFinal()
    lock = uploads.composer.locker.new_lock(upload_id)
    gate = ReleaseGate(on_release_requested, uploads.config.server.release_idle)
    if not await lock.try_acquire(gate.requested):
        _refuse_before_release(uploads, principal, info, request)
        await lock.acquire(uploads.config.server.lock_timeout, gate.requested)
    gate.held_by(lock)
    try:
        info = await _prepare_append(uploads, principal, upload_id, request)
    except BaseException:
        gate.close()
        await lock.release()
        raise
    session = AppendSession(uploads, principal, info, lock, request, gate)
    try:
        await session.open()
    except BaseException:
        await session.abort()
        raise
    return session


def _refuse_before_release(
    uploads: Uploads, principal: Principal, info: UploadInfo, request: AppendRequest
) -> None:
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
        raise uploads.overflow_error(principal, info, request.content_length)


async def _prepare_append(
    uploads: Uploads, principal: Principal, upload_id: str, request: AppendRequest
) -> UploadInfo:
    info = await uploads.load(upload_id)  # fresh, under the lock
    storage = uploads.composer.storage(info.storage)
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
            info = await uploads.state.reset_offset(info.id, held)
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
            uploads.check_size(principal, request.declared_length)
            # Refuse an oversized body before the length is recorded: a
            # refused request must leave the upload as it was.
            declared = info.replace(length=request.declared_length)
            if request.content_length is not None:
                if request.content_length > request.declared_length - info.offset:
                    raise uploads.overflow_error(principal, declared, request.content_length)
            assert isinstance(storage, LengthDeferrable)
            meta = await storage.declare_length(info, request.declared_length)
            info = await uploads.state.update(
                info.id, {"length": request.declared_length, "storage_meta": dict(meta)}
            )
    remaining = uploads.remaining(principal, info)
    if request.content_length is not None and remaining is not None:
        if request.content_length > remaining:
            raise uploads.overflow_error(principal, info, request.content_length)
    if not info.is_complete:
        # Renew the expiry as the body starts: the sweeper must never
        # expire (or ask to release) an upload a live request is writing,
        # even a checksummed one that publishes nothing until it ends.
        # A record renewed within the last RENEW_SLACK of the window is
        # left as it is (one write less per PATCH in a busy upload).
        now = uploads.clock()
        expires = uploads.expiry(now)
        slack = min(RENEW_SLACK, uploads.config.server.expiration / 10)
        if info.expires_at is None or info.expires_at < expires - slack:
            info = await uploads.state.update(info.id, {"expires_at": expires, "updated_at": now})
    return info
