"""``UploadService``: the tus protocol logic without HTTP.

It owns the order lock → load → validate → write → commit for every change,
and raises :mod:`tusd_py.core.errors` only. Handlers translate HTTP to calls here
and back and never reach a storage, the state store or the locker themselves
(``.importlinter`` contract ``handlers-use-the-service``): what they need — the
advertised extensions, a listing page, a download's bytes or URL, metadata
named after creation — has a method here. Storages and state stores are reached
through the :class:`~tusd_py.core.composer.Composer`.

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
from collections.abc import AsyncIterator, Mapping, Sequence

from storage.base import ContentServer, Terminatable
from tusd_py.core import errors, protocol
from tusd_py.core.admission import admit_append
from tusd_py.core.creation import create_final_upload, create_upload
from tusd_py.core.models import ConcatKind, Principal, UploadInfo, UploadState, keeps_expiry, may_access
from tusd_py.core.partials import try_assemble
from tusd_py.core.recovery import catch_up
from tusd_py.core.uploads import Uploads

log = logging.getLogger("tusd_py.app")

#: Seconds after its last byte before a HEAD/GET retries a failed completion.
FINISH_GRACE = 2.0


def downloadable_length(info: UploadInfo) -> int:
    """The length of ``info`` once it can be downloaded; raises
    :class:`errors.UploadIncomplete` (409, saying how far it got) before."""
    if not info.is_complete or info.length is None:
        raise errors.UploadIncomplete(
            f"upload is not complete ({info.offset} of "
            f"{info.length if info.length is not None else '?'} bytes); "
            "downloads are available once it is"
        )
    return info.length


class UploadService(Uploads):
    """tus operations on uploads; one instance per server process. Handlers
    call only this class (and the REST and job modules built on it)."""

    # --- what this server offers -------------------------------------------------

    def tus_extensions(self) -> list[str]:
        """The ``Tus-Extension`` list, most important first: only what every
        configured storage offers (an upload may land on any of them)."""
        return self.composer.tus_extensions()

    # --- lookups -------------------------------------------------------------

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
                current = await self.finish(current)
            return current
        finally:
            await lock.release()

    async def list_uploads(
        self,
        principal: Principal,
        *,
        after: tuple[float, str] | None,
        limit: int,
        state: str | None = None,
        visibility: str | None = None,
        include_partials: bool = False,
    ) -> Sequence[UploadInfo]:
        """Up to ``limit`` uploads ``principal`` may see — its own; an admin's:
        everyone's — in ``(created_at, id)`` order strictly after ``after``,
        expired tombstones included. ``state`` and ``visibility`` filter on the
        stored values; partial uploads of concatenations only with
        ``include_partials``. The owner filter comes from ``principal`` alone."""
        return await self.state.list_uploads(
            owner=None if principal.is_admin else principal.user,
            after=after,
            limit=limit,
            state=state,
            visibility=visibility,
            include_partials=include_partials,
        )

    # --- reading -------------------------------------------------------------

    async def download_url(self, info: UploadInfo) -> str | None:
        """A URL the client may fetch the bytes of ``info`` from directly
        (e.g. S3 presigned, named after its filename), or None when its
        storage hands out none and the bytes go through :meth:`read`.
        ``info`` is a complete upload as :meth:`get` returned it (whoever
        asks was admitted already)."""
        storage = self.composer.storage(info.storage)
        if isinstance(storage, ContentServer):
            return await storage.download_url(info, info.filename)
        return None

    def read(self, info: UploadInfo, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (inclusive) of the complete upload ``info``
        (as :meth:`get` returned it), streamed in the storage's blocks.

        Raises at once — before a byte is read — :class:`errors.UploadIncomplete`
        for an upload not complete and :class:`errors.RangeNotSatisfiable`
        unless ``0 <= start <= end < length``."""
        length = downloadable_length(info)
        if not 0 <= start <= end < length:
            raise errors.RangeNotSatisfiable(
                f"bytes {start}-{end} are not within the upload's {length} bytes",
                headers={"Content-Range": f"bytes */{length}"},
            )
        return self.composer.storage(info.storage).read(info, start, end)

    # --- creation ------------------------------------------------------------

    #: Create an upload (:func:`tusd_py.core.creation.create_upload`).
    create = create_upload
    #: Create the final upload of a concatenation (:func:`tusd_py.core.creation.create_final_upload`).
    create_final = create_final_upload

    async def set_metadata(
        self, principal: Principal, upload_id: str, metadata: Mapping[str, bytes]
    ) -> UploadInfo:
        """Replace the ``Upload-Metadata`` of an unfinished upload of
        ``principal`` (or any, for an admin) with ``metadata`` — e.g. the
        filename and type a ``multipart/form-data`` body names after its
        upload was created. Only that field changes (a running append keeps
        publishing its offset). Raises :class:`errors.UploadNotFound` for
        others' uploads, :class:`errors.UploadCompleted` once it is complete."""
        info = await self.load(upload_id)
        if not may_access(principal, info):
            raise errors.UploadNotFound()
        if info.is_complete:
            raise errors.UploadCompleted("the upload is already complete; its metadata can no longer change")
        return await self.state.update(upload_id, {"metadata_raw": protocol.encode_metadata(dict(metadata))})

    # --- appending -------------------------------------------------------------

    #: Lock the upload and validate a PATCH before its body is read
    #: (:func:`tusd_py.core.admission.admit_append`).
    begin_append = admit_append

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
