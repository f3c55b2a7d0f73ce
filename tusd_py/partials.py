"""Life cycle of the partial uploads of a concatenation (tus ``concatenation``).

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
  (``?include=partial``, see :mod:`tusd_py.listing`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tusd_py import errors
from tusd_py.models import ConcatKind, UploadInfo, UploadState

if TYPE_CHECKING:
    from tusd_py.service import UploadService

log = logging.getLogger("tusd_py.app")

#: Seconds an assembled partial stays available for another final before the
#: expiry sweeper removes it (at most ``server.expiration``).
REUSE_GRACE = 300.0


def keeps_expiry(info: UploadInfo) -> bool:
    """True for records the expiry applies to: incomplete uploads and
    complete partial uploads (awaiting their final)."""
    if info.state is UploadState.UPLOADING:
        return True
    return info.state is UploadState.COMPLETE and info.concat is ConcatKind.PARTIAL


def is_expired(info: UploadInfo, now: float) -> bool:
    """True for tombstones and for records past their expiry."""
    if info.state is UploadState.EXPIRED:
        return True
    return keeps_expiry(info) and info.expires_at is not None and info.expires_at < now


async def retire_assembled_partials(service: UploadService, partials: Sequence[UploadInfo]) -> int:
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
