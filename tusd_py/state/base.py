"""The ``StateStore`` seam: upload records, offsets and multipart parts.

Implementations (memory, SQLite, Redis) pass one contract suite
(``tests/contract/test_state_store.py``). Every method may raise
:class:`tusd_py.core.errors.StateStoreError` when the backend is unreachable;
no other foreign exception escapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from tusd_py.core.models import PartRecord, UploadInfo

#: Fields :meth:`StateStore.update` may change.
UPDATABLE_FIELDS = frozenset(
    {
        "length",
        "state",
        "storage",
        "storage_meta",
        "visibility",
        "mime",
        "metadata_raw",
        "updated_at",
        "expires_at",
        "checksum",
    }
)


@runtime_checkable
class StateStore(Protocol):
    """Persistent upload records shared by every request (and instance)."""

    async def create(self, info: UploadInfo) -> None:
        """Insert a new record. Raises ``ValueError`` if the id exists."""

    async def get(self, upload_id: str) -> UploadInfo | None:
        """The record, or None if unknown (tombstones are returned)."""

    async def commit_offset(
        self,
        upload_id: str,
        expected: int,
        new: int,
        *,
        updated_at: float,
        expires_at: float | None,
    ) -> UploadInfo:
        """Compare-and-set the offset from ``expected`` to ``new``.

        ``new`` must be ``>= expected`` (an offset never moves backwards;
        ``ValueError`` otherwise). Raises :class:`errors.OffsetMismatch` if the
        stored offset is not ``expected`` and :class:`errors.UploadNotFound` if
        the record is gone. Of two concurrent calls with the same ``expected``
        exactly one wins. Returns the updated record. Every store applies the
        one guard :class:`tusd_py.state.rules.OffsetCommit` (same errors, same
        messages); none writes a second copy of it.
        """

    async def reset_offset(self, upload_id: str, offset: int) -> UploadInfo:
        """Set the offset unconditionally (startup reconciliation only: the
        storage is the truth for bytes). Raises :class:`errors.UploadNotFound`."""

    async def update(self, upload_id: str, changes: Mapping[str, Any]) -> UploadInfo:
        """Change fields listed in :data:`UPDATABLE_FIELDS`; returns the record.
        Raises :class:`errors.UploadNotFound` and ``KeyError`` for other fields."""

    async def delete(self, upload_id: str) -> None:
        """Remove the record and its parts; a missing id is not an error."""

    async def list_expired(self, now: float, limit: int) -> Sequence[UploadInfo]:
        """Up to ``limit`` incomplete uploads and complete partial uploads
        (awaiting assembly) whose ``expires_at`` < ``now``, by ``expires_at``."""

    async def purge_tombstones(self, before: float, limit: int) -> int:
        """Delete up to ``limit`` expired tombstones last updated before ``before``."""

    async def list_uploads(
        self,
        *,
        owner: str | None,
        after: tuple[float, str] | None,
        limit: int,
        state: str | None = None,
        visibility: str | None = None,
        include_partials: bool = True,
    ) -> Sequence[UploadInfo]:
        """Uploads ordered by ``(created_at, id)``, strictly after ``after``.

        ``owner`` None lists everyone's (admins). ``include_partials`` False
        leaves out partial uploads of concatenations. Stable under concurrent
        inserts: a record is never returned twice by successive pages.
        """

    async def list_ids(self, after: str, limit: int) -> Sequence[str]:
        """Upload ids greater than ``after`` in id order (reconciliation scans)."""

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        """Record (or replace) one uploaded multipart part."""

    async def list_parts(self, upload_id: str) -> Sequence[PartRecord]:
        """The recorded parts ordered by part number."""

    async def delete_parts(self, upload_id: str, first: int = 1) -> None:
        """Forget the parts of an upload numbered ``first`` or higher (every
        part by default); parts below ``first`` stay recorded."""

    async def get_idempotency_key(self, owner: str, key: str, now: float) -> str | None:
        """The upload id ``(owner, key)`` is bound to, unless absent or expired
        (``expires_at <= now``)."""

    async def claim_idempotency_key(
        self, owner: str, key: str, upload_id: str, *, now: float, expires_at: float
    ) -> str:
        """Bind ``(owner, key)`` to ``upload_id`` until ``expires_at`` unless a
        binding that has not expired exists. Returns the upload id bound after
        the call: of concurrent claims exactly one wins and all get its id."""

    async def release_idempotency_key(self, owner: str, key: str, upload_id: str) -> None:
        """Forget the binding of ``(owner, key)`` if it still names ``upload_id``."""

    async def purge_idempotency_keys(self, now: float, limit: int) -> int:
        """Delete up to ``limit`` bindings expired at ``now``; returns how many
        (stores with native expiry may always return 0)."""

    async def ping(self) -> None:
        """Raise :class:`errors.StateStoreError` unless the backend answers."""

    async def close(self) -> None:
        """Release connections and background tasks; idempotent."""
