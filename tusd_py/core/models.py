"""Value objects shared by the service, the state stores and the storages."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from tusd_py.core import protocol


class UploadState(StrEnum):
    """Life cycle of an upload record.

    ``uploading`` → ``complete`` (offset reached length) ; ``expired`` is a
    tombstone left by the sweeper so later requests get 410. Terminated uploads
    are deleted outright (later requests get 404).
    """

    UPLOADING = "uploading"
    COMPLETE = "complete"
    EXPIRED = "expired"


class ConcatKind(StrEnum):
    """Role of an upload in the concatenation extension."""

    NONE = "none"
    PARTIAL = "partial"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``user`` is the stable owner id recorded on uploads; ``tier`` selects the
    limits; admins see every upload.
    """

    user: str
    tier: str = "basic"
    claims: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.tier == "admin"


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """Everything the server knows about one upload (tusd's ``FileInfo``).

    ``length`` is None while deferred. ``offset`` counts bytes held durably.
    ``metadata_raw`` and ``concat_raw`` are the headers exactly as received
    (echoed on HEAD). ``storage`` names the backend holding the bytes and
    ``storage_meta`` is that backend's private bookkeeping. ``checksum`` is
    the whole upload's digest as ``"<algorithm>:<hex>"`` when the server
    computed it from checksummed PATCHes (see :class:`tusd_py.core.checksum.FileDigests`).
    """

    id: str
    owner: str
    length: int | None
    offset: int = 0
    metadata_raw: str = ""
    concat: ConcatKind = ConcatKind.NONE
    concat_raw: str = ""
    partials: tuple[str, ...] = ()
    storage: str = "disk"
    storage_meta: Mapping[str, str] = field(default_factory=dict)
    state: UploadState = UploadState.UPLOADING
    visibility: str = "private"
    mime: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    checksum: str | None = None
    #: The uploader's tier when the upload was created (its jobs' queue priority).
    tier: str = "basic"

    @property
    def is_complete(self) -> bool:
        """True once every byte of a known length is stored."""
        return self.state is UploadState.COMPLETE

    @property
    def defer_length(self) -> bool:
        return self.length is None

    @property
    def metadata(self) -> dict[str, bytes]:
        """Decoded metadata (raw bytes per key); empty if none."""
        return protocol.parse_metadata(self.metadata_raw) if self.metadata_raw else {}

    @property
    def filename(self) -> str | None:
        """The client's ``filename`` (or ``name``) metadata as text, if any."""
        meta = self.metadata
        raw = meta.get("filename") or meta.get("name")
        return raw.decode("utf-8", "replace") if raw else None

    def replace(self, **changes: Any) -> UploadInfo:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class PartRecord:
    """One uploaded part of a multipart (S3) upload."""

    number: int
    etag: str
    size: int


def may_access(principal: Principal, info: UploadInfo) -> bool:
    """Owners and admins may see and change an upload."""
    return principal.is_admin or info.owner == principal.user


def iso_time(timestamp: float | None) -> str | None:
    """RFC 3339 UTC with milliseconds (``2024-05-01T12:00:00.000Z``), or None."""
    if timestamp is None:
        return None
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
