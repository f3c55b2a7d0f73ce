"""Concatenation (tus ``concatenation``): assembling finals, and the life
cycle of partial uploads.

Contract (issue 12.5):

* A partial upload keeps the normal sliding expiry while it uploads *and*
  once it is complete but not yet assembled into a final upload: a client
  that never sends the final (or abandons it) leaves nothing behind after
  ``server.expiration``.
* Once a final upload is assembled and complete (at once when created from
  finished partials, or lazily on a later HEAD/GET of a
  concatenation-unfinished final), its partials' expiry is cut to
  :data:`REUSE_GRACE` seconds from then. The expiry sweeper then frees their
  bytes on every storage (local file, S3 object or multipart upload) and
  leaves a tombstone (410) that is forgotten after ``server.tombstone_ttl``.
  The grace keeps TUS-CHECKLIST line 77 ("a partial may be reused by several
  finals", which the tus spec allows) for finals created right after the
  first one, while parallel uploads (tusd-py ``--parallel``, tus-js-client
  ``parallelUploads``) no longer hold their bytes twice for long.
* Listings (``GET <base_path>``) leave partials out unless asked for
  (``?include=partial``, see :mod:`tusd_py.rest.listing`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from storage.base import Concatenatable
from tusd_py.core import errors
from tusd_py.core.models import ConcatKind, Principal, UploadInfo, is_expired, may_access
from tusd_py.core.uploads import Uploads

log = logging.getLogger("tusd_py.app")

#: Seconds an assembled partial stays available for another final before the
#: expiry sweeper removes it (at most ``server.expiration``).
REUSE_GRACE = 300.0


async def retire_assembled_partials(service: Uploads, partials: Sequence[UploadInfo]) -> int:
    """Cut the expiry of the partials of a final upload that has just been
    assembled and finished to :data:`REUSE_GRACE` from now (never extending
    it); returns how many were changed. Never raises for one partial: a
    failure is logged and that partial keeps its normal expiry."""
    changed = 0
    now = service.clock()
    until = now + min(REUSE_GRACE, service.config.server.expiration)
    for partial_id in dict.fromkeys(p.id for p in partials):
        try:
            current = await service.state.get(partial_id)
            if current is None or current.concat is not ConcatKind.PARTIAL or not current.is_complete:
                continue
            if current.expires_at is not None and current.expires_at <= until:
                continue
            await service.state.update(partial_id, {"expires_at": until})
            changed += 1
        except errors.TusError as exc:
            log.warning(
                "could not schedule the removal of assembled partial %s: %s",
                partial_id,
                exc.message,
                extra={"upload_id": partial_id},
            )
    return changed


async def load_partials(
    service: Uploads, principal: Principal, partial_ids: Sequence[str]
) -> list[UploadInfo]:
    """The partials a new final names. Each must exist and belong to
    ``principal`` (else 404), be a partial upload (else 400) and not have
    expired (else 400)."""

    partials = []
    for partial_id in partial_ids:
        try:
            part = await service.load(partial_id)
        except errors.UploadGone:
            raise errors.InvalidConcat(f"partial upload {partial_id} has expired") from None
        except errors.UploadNotFound:
            raise errors.UploadNotFound(f"partial upload {partial_id} not found") from None
        if not may_access(principal, part):
            raise errors.UploadNotFound(f"partial upload {partial_id} not found")
        if part.concat is not ConcatKind.PARTIAL:
            raise errors.InvalidConcat(f"upload {partial_id} is not a partial upload")
        partials.append(part)
    return partials


async def try_assemble(service: Uploads, final: UploadInfo) -> UploadInfo:
    """Assemble ``final`` if all its partials are complete (lazily, under
    the final's lock); otherwise return it as it is (its length fixed once
    every partial's length is known)."""
    partials = []
    for partial_id in final.partials:
        part = await service.state.get(partial_id)
        if part is None or is_expired(part, service.clock()):
            return final
        if not part.is_complete:
            if final.length is None:
                lengths = [
                    p.length if p else None for p in [await service.state.get(i) for i in final.partials]
                ]
                if None not in lengths:
                    final = await service.state.update(
                        final.id, {"length": sum(x for x in lengths if x is not None)}
                    )
            return final
        partials.append(part)
    lock = service.composer.locker.new_lock(final.id)
    await lock.acquire(service.config.server.lock_timeout, lambda: None)
    try:
        current = await service.state.get(final.id)
        if current is None:
            raise errors.UploadNotFound()
        if current.is_complete:
            return current
        return await assemble(service, current, partials)
    finally:
        await lock.release()


async def assemble(service: Uploads, final: UploadInfo, partials: Sequence[UploadInfo]) -> UploadInfo:
    """Concatenate ``partials`` into ``final``, finish it and retire the partials."""
    storage = service.composer.storage(final.storage)
    assert isinstance(storage, Concatenatable)
    total = sum(p.length or 0 for p in partials)
    # Two steps (storage.base.Concatenatable): what the assembly starts is
    # named by the saved record before it runs, so a crash leaves nothing unowned.
    meta = await storage.begin_concatenate(final, partials)
    if dict(meta) != dict(final.storage_meta):
        final = await service.state.update(final.id, {"storage_meta": dict(meta)})
    meta = await storage.concatenate(final, partials)
    now = service.clock()
    if final.length is None:
        final = await service.state.update(final.id, {"length": total})
    final = await service.state.update(final.id, {"storage_meta": dict(meta), "updated_at": now})
    final = await service.state.commit_offset(
        final.id, final.offset, total, updated_at=now, expires_at=final.expires_at
    )
    final = await service.finish(final)
    await retire_assembled_partials(service, partials)
    return final
