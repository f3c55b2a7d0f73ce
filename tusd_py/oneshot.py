"""One-shot uploads for clients that do not speak tus (``POST /index``).

The HTTP handler (:mod:`handlers.index`) streams the body into an ordinary
tus upload; this module holds the parts that need no HTTP: the response
document, ``Idempotency-Key`` bookkeeping and the final length declaration
of uploads whose size was unknown when the request started.
"""

from __future__ import annotations

import re
from typing import Any

from tusd_py import errors
from tusd_py.models import Principal, UploadInfo
from tusd_py.service import AppendRequest, UploadService

_KEY_RE = re.compile(r"[\x21-\x7e]{1,255}")


def parse_idempotency_key(value: str | None) -> str | None:
    """The ``Idempotency-Key`` header (None if absent). A quoted value (the
    IETF draft's structured-field form) is unquoted. Raises
    :class:`errors.InvalidIdempotencyKey` for empty, long or non-printable keys."""
    if value is None:
        return None
    key = value.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY_RE.fullmatch(key):
        raise errors.InvalidIdempotencyKey()
    return key


def index_document(info: UploadInfo, base_path: str) -> dict[str, Any]:
    """The 201 body of ``POST /index`` (SPEC §6) plus offset, state and type."""
    return {
        "file_id": info.id,
        "status_url": f"/index-status/{info.id}",
        "upload_url": f"{base_path}{info.id}",
        "size": info.length,
        "storage": info.storage,
        "offset": info.offset,
        "state": info.state.value,
        "filename": info.filename,
        "mime": info.mime,
    }


class IdempotencyKeys:
    """``(user, Idempotency-Key) → upload`` bindings kept in the state store."""

    def __init__(self, service: UploadService, ttl: float) -> None:
        self.service = service
        self.ttl = ttl

    async def lookup(self, principal: Principal, key: str) -> UploadInfo | None:
        """The live upload bound to ``key`` for ``principal``, or None. A
        binding to an upload that is gone (terminated, refused, expired) is
        forgotten so the retry starts afresh."""
        state = self.service.state
        upload_id = await state.get_idempotency_key(principal.user, key, self.service.clock())
        if upload_id is None:
            return None
        try:
            return await self.service.get(principal, upload_id)
        except (errors.UploadNotFound, errors.UploadGone):
            await state.release_idempotency_key(principal.user, key, upload_id)
            return None

    async def claim(self, principal: Principal, key: str, info: UploadInfo) -> str:
        """Bind ``key`` to the new upload ``info``; returns the id that holds
        the key (another one when a concurrent request with the same key won)."""
        now = self.service.clock()
        return await self.service.state.claim_idempotency_key(
            principal.user, key, info.id, now=now, expires_at=now + self.ttl
        )

    async def forget(self, principal: Principal, key: str, upload_id: str) -> None:
        """Drop the binding of ``key`` if it still names ``upload_id``."""
        await self.service.state.release_idempotency_key(principal.user, key, upload_id)


async def declare_received_length(service: UploadService, principal: Principal, upload_id: str) -> UploadInfo:
    """Fix the length of a deferred-length upload at the bytes it holds and
    finish it (the end of a body whose size was unknown up front).

    Takes the upload's lock like a tus PATCH carrying ``Upload-Length`` and an
    empty body; raises what such a PATCH would (409, 413, 423...)."""
    info = await service.load(upload_id)
    session = await service.begin_append(
        principal,
        upload_id,
        AppendRequest(offset=info.offset, content_length=0, declared_length=info.offset),
        lambda: None,
    )
    return await session.commit()
