"""One-shot uploads for clients that do not speak tus (``POST /index``).

The HTTP handler (:mod:`handlers.index`) streams the body into an ordinary
tus upload; this module holds the parts that need no HTTP: the response
document, ``Idempotency-Key`` bookkeeping and the final length declaration
of uploads whose size was unknown when the request started.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from tusd_py.core import errors
from tusd_py.core.append import AppendRequest
from tusd_py.core.models import Principal, UploadInfo
from tusd_py.core.service import UploadService

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


#: Request headers that make two ``POST /index`` requests "the same request".
FINGERPRINT_HEADERS = ("Content-Length", "Transfer-Encoding", "X-Filename", "Upload-Metadata")


def request_fingerprint(method: str, path: str, headers: Mapping[str, str], visibility: str | None) -> str:
    """A digest of the request head that identifies one ``POST /index`` request.

    It covers the method, path, ``visibility`` query argument, media type
    (without parameters: a multipart boundary differs between attempts of one
    client) and :data:`FINGERPRINT_HEADERS`. A retry of the same request has
    the same fingerprint; the same key with another fingerprint is refused
    with 422 (draft-ietf-httpapi-idempotency-key-header). The body itself is
    not hashed: it arrives after the decision and is never buffered."""
    media_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    head = [method.upper(), path, visibility or "", media_type]
    head += [headers.get(name, "").strip() for name in FINGERPRINT_HEADERS]
    return hashlib.sha256(json.dumps(head).encode()).hexdigest()[:32]


def _binding(upload_id: str, fingerprint: str) -> str:
    return f"{upload_id} {fingerprint}"


def _split_binding(value: str) -> tuple[str, str | None]:
    """``(upload_id, fingerprint)`` of a stored binding (None for bindings
    written before fingerprints were recorded: those match any request)."""
    upload_id, _, fingerprint = value.partition(" ")
    return upload_id, fingerprint or None


class IdempotencyKeys:
    """``(user, Idempotency-Key) → upload`` bindings kept in the state store.

    A binding's value is ``"<upload_id> <fingerprint>"`` (see
    :func:`request_fingerprint`): the state store keeps it as an opaque
    string, so SQLite and Redis need no schema of their own for it.
    """

    def __init__(self, service: UploadService, ttl: float) -> None:
        self.service = service
        self.ttl = ttl

    async def lookup(self, principal: Principal, key: str, fingerprint: str) -> UploadInfo | None:
        """The live upload bound to ``key`` for ``principal``, or None. A
        binding to an upload that is gone (terminated, refused, expired) is
        forgotten so the retry starts afresh. Raises
        :class:`errors.IdempotencyKeyReused` (422) when the key is bound to a
        live upload made by a request with another ``fingerprint``."""
        state = self.service.state
        value = await state.get_idempotency_key(principal.user, key, self.service.clock())
        if value is None:
            return None
        upload_id, bound_fingerprint = _split_binding(value)
        try:
            info = await self.service.get(principal, upload_id)
        except (errors.UploadNotFound, errors.UploadGone):
            await state.release_idempotency_key(principal.user, key, value)
            return None
        if bound_fingerprint is not None and bound_fingerprint != fingerprint:
            raise errors.IdempotencyKeyReused()
        return info

    async def claim(self, principal: Principal, key: str, info: UploadInfo, fingerprint: str) -> str:
        """Bind ``key`` to the new upload ``info``; returns the id that holds
        the key (another one when a concurrent request with the same key won)."""
        now = self.service.clock()
        value = await self.service.state.claim_idempotency_key(
            principal.user, key, _binding(info.id, fingerprint), now=now, expires_at=now + self.ttl
        )
        return _split_binding(value)[0]

    async def forget(self, principal: Principal, key: str, upload_id: str, fingerprint: str) -> None:
        """Drop the binding of ``key`` if it still names ``upload_id``."""
        await self.service.state.release_idempotency_key(
            principal.user, key, _binding(upload_id, fingerprint)
        )


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
