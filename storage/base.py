"""The ``Storage`` seam: where upload bytes live.

A backend implements the small core of :class:`Storage` and opts into
capabilities (tusd's composer idea) by listing them in ``capabilities`` *and*
implementing the matching protocol; :class:`tusd_py.core.composer.Composer` checks
both at startup and derives the advertised ``Tus-Extension`` from them.

Errors: backends raise :mod:`tusd_py.core.errors` ``BackendError`` subclasses
(``StorageError``, ``StorageUnavailable``, ``InsufficientStorage``) and
translate their foreign exceptions (OSError, botocore) at this boundary.

The upload record belongs to the service (:mod:`tusd_py.core`): a backend
never reads or writes it. Every method receives the record as the caller
holds it (current: loaded under the upload's lock, carrying every
``storage_meta`` saved since) and *returns* the ``storage_meta`` to save;
where that meta must be durable before the backend goes on (bytes moved to
S3, an assembly started), the work is split in two and the caller saves in
between (:class:`MetaChanging`, :meth:`Concatenatable.begin_concatenate`).
The only thing a backend keeps in the shared stores is its own
:class:`PartsLedger`; leftovers are judged by the caller
(:class:`OrphanSweeper`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol, runtime_checkable

from tusd_py.core.models import PartRecord, UploadInfo


class Capability(StrEnum):
    """Optional abilities of a storage backend."""

    TERMINATE = "terminate"
    CONCATENATE = "concatenate"
    DECLARE_LENGTH = "declare-length"
    SERVE_CONTENT = "serve-content"
    #: ``durable_offset`` answers from this host at once (a file's size), so a
    #: caller need not bound its wait (HEAD's :func:`~tusd_py.core.recovery.catch_up`
    #: arms a timer only for storages without it).
    HOST_OFFSET = "host-offset"


@runtime_checkable
class ChunkWriter(Protocol):
    """Appends one request's bytes to an upload, starting at its offset."""

    async def write(self, chunk: bytes) -> None:
        """Store ``chunk`` after the previous ones. Raises ``BackendError``;
        after an error, :meth:`close` still reports the bytes stored."""

    async def close(self) -> int:
        """Make written bytes durable per policy; return how many bytes this
        writer stored in total (the new offset is ``start + that``).
        Idempotent."""


@runtime_checkable
class MetaChanging(Protocol):
    """A :class:`ChunkWriter` whose backend may change the upload's
    ``storage_meta`` while bytes flow (S3: a local-phase upload switching to
    a multipart upload when it passes the threshold).

    Contract: after every :meth:`ChunkWriter.write` the caller asks
    :meth:`pending_meta`. A mapping means the bytes written so far are now
    also held in a form that needs that meta (spool parts of a new
    multipart upload) while the form the saved meta names is still intact
    (the local file). The caller saves it as the record's ``storage_meta``
    (durably), then calls :meth:`meta_saved` — and only then publishes an
    offset or writes again (a write while a change is pending raises
    ``StorageError``). Both forms stay until :meth:`meta_saved`, so whatever
    the record says after a crash, or after a save that failed (or only
    seemed to), is true; :meth:`ChunkWriter.close` with a change pending
    leaves them too (the unused one is replaced or swept later)."""

    def pending_meta(self) -> Mapping[str, str] | None:
        """The ``storage_meta`` the caller must save now, or None."""

    async def meta_saved(self) -> None:
        """The pending meta is durable: drop the old form and go on in the new."""


@runtime_checkable
class Storage(Protocol):
    """Core byte storage every backend provides."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]

    async def create(self, info: UploadInfo) -> Mapping[str, str]:
        """Prepare storage for a new upload; returns its ``storage_meta``."""

    async def open_writer(self, info: UploadInfo) -> ChunkWriter:
        """A writer appending at ``info.offset``. The caller holds the lock
        and passes the record as loaded under it."""

    async def durable_offset(self, info: UploadInfo) -> int:
        """How many bytes of the upload the storage really holds (truth for
        reconciliation; may differ from ``info.offset`` after a crash),
        computed from what every process sharing the storage sees, never from
        one process's memory. ``info`` is the record as just loaded."""

    async def finish(self, info: UploadInfo) -> Mapping[str, str]:
        """Called once when offset reaches length; returns new ``storage_meta``."""

    def read(self, info: UploadInfo, start: int, end: int) -> AsyncIterator[bytes]:
        """Yield bytes ``start..end`` (inclusive) of a complete upload."""

    async def ping(self) -> None:
        """Raise ``BackendError`` unless the backend is usable."""

    async def close(self) -> None:
        """Release clients, executors and background tasks; idempotent."""


@runtime_checkable
class Terminatable(Protocol):
    async def terminate(self, info: UploadInfo) -> None:
        """Free every byte and object of the upload; unknown data is not an error."""


@runtime_checkable
class Concatenatable(Protocol):
    """Assembly in two steps, so that what an assembly cut short leaves
    behind is always named by the final's record: the caller saves the meta
    :meth:`begin_concatenate` returns (durably), then calls
    :meth:`concatenate` with the record carrying it, and saves the meta that
    returns. :meth:`concatenate` also works without the first step (it
    prepares by itself), only then a crash may leave an unnamed leftover for
    the orphan sweep."""

    async def begin_concatenate(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> Mapping[str, str]:
        """Prepare the assembly of ``partials`` (all complete) into ``final``;
        returns the ``storage_meta`` naming what it started (e.g. the S3
        multipart upload, so that terminating the final frees it), or the
        final's own meta when nothing was started."""

    async def concatenate(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> Mapping[str, str]:
        """Fill ``final`` (its record as saved after :meth:`begin_concatenate`)
        with the bytes of ``partials`` in order; returns the final's
        ``storage_meta``."""


@runtime_checkable
class LengthDeferrable(Protocol):
    async def declare_length(self, info: UploadInfo, length: int) -> Mapping[str, str]:
        """The deferred length became known; returns new ``storage_meta``."""


@runtime_checkable
class ContentServer(Protocol):
    async def download_url(self, info: UploadInfo, filename: str | None) -> str | None:
        """A URL the client can GET the bytes from directly (e.g. presigned),
        or None to stream them through the server."""


@runtime_checkable
class BoundedProgress(Protocol):
    """A :class:`ChunkWriter` whose written bytes are not all held for every
    instance until :meth:`ChunkWriter.close` (e.g. S3 tails kept in the bucket:
    until the request ends, the unfinished part is on this host's disk only)."""

    def publishable(self) -> int:
        """How many of the bytes written so far (from the start of this
        request) may be published as the upload's offset mid-request: the ones
        any instance could continue from if this process died now."""


@runtime_checkable
class Rewindable(Protocol):
    async def rewind(self, info: UploadInfo, offset: int) -> bool:
        """The upload holds more than ``offset`` (its published offset) bytes:
        make it hold exactly ``offset`` if the backend can (caller holds the
        lock); True on success, False when nothing was changed."""


@dataclass(frozen=True, slots=True)
class Leftover:
    """Something a backend keeps for an upload besides what its record's
    ``storage_meta`` may name (e.g. an S3 multipart upload)."""

    #: The upload it was made for.
    upload_id: str
    #: The backend's names for it (S3: the object key and the UploadId).
    key: str
    handle: str
    #: When it was started (seconds since the epoch).
    started: float


@runtime_checkable
class OrphanSweeper(Protocol):
    """A backend that can list and remove its leftovers. It reads no record:
    the caller (:func:`tusd_py.ops.reconcile.sweep_orphans`) loads the record
    of each leftover's upload and removes the leftover unless that record is
    live (uploading, not expired) and :meth:`owns` it."""

    async def leftovers(self, older_than: float, now: float) -> Sequence[Leftover]:
        """Leftovers started more than ``older_than`` seconds before ``now``."""

    def owns(self, info: UploadInfo, leftover: Leftover) -> bool:
        """True if the live record ``info`` (of ``leftover.upload_id``) still
        uses ``leftover``."""

    async def remove_leftover(self, leftover: Leftover) -> None:
        """Free ``leftover``; one already gone is not an error."""


CAPABILITY_PROTOCOLS: Mapping[Capability, type] = {
    Capability.TERMINATE: Terminatable,
    Capability.CONCATENATE: Concatenatable,
    Capability.DECLARE_LENGTH: LengthDeferrable,
}


class PartsLedger(Protocol):
    """Where a multipart backend records the parts confirmed by S3 (number,
    ETag, size), shared by every process of a deployment. It is the storage's
    own ledger, not the upload record: the state stores implement it, and a
    backend holding it never reads or writes anything else through it."""

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        """Record (or replace) one uploaded part."""

    async def list_parts(self, upload_id: str) -> Sequence[PartRecord]:
        """The recorded parts ordered by part number."""

    async def delete_parts(self, upload_id: str, first: int = 1) -> None:
        """Forget parts numbered ``first`` or higher."""


#: Chooses a storage name for a new upload from its length (None = deferred).
StoragePolicy = Callable[[int | None], str]
