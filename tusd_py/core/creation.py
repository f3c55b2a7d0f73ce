"""Creating uploads: a single upload, or the final upload of a concatenation.

The record is built here, offered to the pre-create hook, its storage asked
to make room (returning the ``storage_meta`` to keep), then saved once.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.base import Capability
from tusd_py.core import errors, protocol
from tusd_py.core.models import ConcatKind, Principal, UploadInfo
from tusd_py.core.partials import assemble, load_partials
from tusd_py.core.uploads import Uploads


async def create_upload(
    uploads: Uploads,
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
        uploads.check_size(principal, length)
    elif not uploads.composer.has(Capability.DECLARE_LENGTH):
        raise errors.InvalidLength("this server cannot defer upload lengths")
    info = _new_record(
        uploads,
        principal,
        length,
        metadata_raw=metadata_raw,
        concat=ConcatKind.PARTIAL if partial else ConcatKind.NONE,
        concat_raw="partial" if partial else "",
        visibility=visibility,
    )
    if uploads.pre_create is not None:
        info = await uploads.pre_create(principal, info)
    info = await _save(uploads, info)
    if length == 0:
        info = await uploads.finish(info)
    return info


async def create_final_upload(
    uploads: Uploads,
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
    if not uploads.composer.has(Capability.CONCATENATE):
        raise errors.InvalidConcat("this server does not support concatenation")
    partials = await load_partials(uploads, principal, partial_ids)
    lengths = [p.length for p in partials]
    total = sum(x for x in lengths if x is not None) if None not in lengths else None
    if total is not None:
        uploads.check_size(principal, total)
    info = _new_record(
        uploads,
        principal,
        total,
        metadata_raw=metadata_raw,
        concat=ConcatKind.FINAL,
        concat_raw=concat_raw,
        partials=tuple(partial_ids),
        visibility=visibility,
    )
    info = await _save(uploads, info)
    if all(p.is_complete for p in partials):
        info = await assemble(uploads, info, partials)
    return info


def _new_record(
    uploads: Uploads,
    principal: Principal,
    length: int | None,
    *,
    metadata_raw: str,
    concat: ConcatKind,
    concat_raw: str,
    visibility: str | None,
    partials: tuple[str, ...] = (),
) -> UploadInfo:
    """The record of a new upload of ``principal`` (not saved yet)."""
    now = uploads.clock()
    return UploadInfo(
        id=protocol.new_upload_id(),
        owner=principal.user,
        tier=principal.tier,
        length=length,
        metadata_raw=metadata_raw,
        concat=concat,
        concat_raw=concat_raw,
        partials=partials,
        storage=uploads.composer.choose(length),
        visibility=visibility or "private",
        created_at=now,
        updated_at=now,
        expires_at=uploads.expiry(now),
    )


async def _save(uploads: Uploads, info: UploadInfo) -> UploadInfo:
    """Let the upload's storage make room, save the record with the
    ``storage_meta`` it returned, and announce ``upload.created``."""
    meta = await uploads.composer.storage(info.storage).create(info)
    info = info.replace(storage_meta=dict(meta))
    await uploads.state.create(info)
    uploads.events.emit("upload.created", info)
    return info
