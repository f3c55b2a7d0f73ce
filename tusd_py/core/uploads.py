"""``Uploads``: what every upload operation shares — the backends, the limits,
loading a record, and completing or discarding an upload.

The operations themselves live beside it, one seam each: creation
(:mod:`tusd_py.core.creation`), admitting a PATCH (:mod:`tusd_py.core.admission`),
the append session (:mod:`tusd_py.core.append`), concatenation
(:mod:`tusd_py.core.partials`); :class:`tusd_py.core.service.UploadService`
puts them behind one façade. Every change of the record goes through the
state store here or in those modules; storages only return what to save.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from storage.base import Terminatable
from tusd_py.core import errors, protocol
from tusd_py.core.checksum import FileDigests
from tusd_py.core.composer import Composer
from tusd_py.core.config import Config
from tusd_py.core.events import EventSink, LogEventSink
from tusd_py.core.models import ConcatKind, Principal, UploadInfo, UploadState, is_expired


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


def offset_mismatch(sent: int, offset: int) -> errors.OffsetMismatch:
    """The 409 for a PATCH at ``sent`` when the upload holds ``offset`` bytes."""
    return errors.OffsetMismatch(
        f"Upload-Offset is {sent} but the upload's offset is {offset}; "
        "send HEAD to resume from the right offset"
    )


class Uploads:
    """The backends, limits and record operations shared by every upload
    operation; one instance per server process (as its
    :class:`~tusd_py.core.service.UploadService`)."""

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

    def check_size(self, principal: Principal, length: int) -> None:
        limit = self.max_size_for(principal)
        if limit and length > limit:
            raise errors.MaxSizeExceeded(
                f"upload of {length} bytes exceeds the maximum size of {limit} bytes"
            )

    def expiry(self, now: float) -> float:
        return now + self.config.server.expiration

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

    def remaining(self, principal: Principal, info: UploadInfo) -> int | None:
        """Bytes this upload may still receive (None = unbounded)."""
        if info.length is not None:
            return info.length - info.offset
        limit = self.max_size_for(principal)
        return limit - info.offset if limit else None

    def overflow_error(self, principal: Principal, info: UploadInfo, size: int) -> errors.TusError:
        if info.length is not None:
            return errors.UploadSizeExceeded(
                f"{size} more bytes at offset {info.offset} would exceed the upload length {info.length}"
            )
        return errors.MaxSizeExceeded(
            f"upload would exceed the maximum size of {self.max_size_for(principal)} bytes"
        )

    async def finish(self, info: UploadInfo, checksum: str | None = None) -> UploadInfo:
        """Mark ``info`` complete, recording its whole-upload ``checksum`` when
        known. A complete upload no longer expires, except a partial upload,
        which keeps the expiry until assembled (:mod:`tusd_py.core.partials`)."""
        storage = self.composer.storage(info.storage)
        meta = await storage.finish(info)
        now = self.clock()
        changes: dict[str, object] = {
            "state": UploadState.COMPLETE,
            "storage_meta": dict(meta),
            "expires_at": self.expiry(now) if info.concat is ConcatKind.PARTIAL else None,
            "updated_at": now,
        }
        if checksum is not None:
            changes["checksum"] = checksum
        info = await self.state.update(info.id, changes)
        self.events.emit("upload.finished", info)
        return info

    async def discard_rejected(self, info: UploadInfo, reason: str) -> None:
        """Free an upload refused by an inspector (lock already held)."""
        storage = self.composer.storage(info.storage)
        if isinstance(storage, Terminatable):
            await storage.terminate(info)
        await self.state.delete(info.id)
        self.events.emit("upload.failed", info, reason)
