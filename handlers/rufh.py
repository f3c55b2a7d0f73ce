"""IETF draft requests (:mod:`tusd_py.rufh`) on the tus routes.

:class:`handlers.collection.CollectionHandler` and
:class:`handlers.resource.UploadHandler` call these when
:meth:`~handlers.base.BaseHandler.detect_draft` recognised the request; the
uploads are the same as tus uploads (service, storage, state, locks, auth,
throttling, S3 relay), only the headers differ:

* creation (POST): ``Upload-Complete`` (``Upload-Incomplete`` for interop 3),
  length from ``Upload-Length`` or, when complete, ``Content-Length``;
  ``Content-Type``/``Content-Disposition`` (and a tus ``Upload-Metadata``)
  become metadata ``filetype``/``filename``; a ``104`` with ``Location`` and
  ``Upload-Limit`` is written before the body is read; 201 at the end;
* offset retrieval (HEAD): 204 with ``Upload-Offset``, the completeness
  field, ``Upload-Length``, ``Upload-Limit``, ``Cache-Control: no-store``;
* append (PATCH): the body streams like a tus PATCH; 104 progress responses
  with ``Upload-Offset`` every ``server.progress_interval`` (interop 6 on).

Errors are problem details (:mod:`tusd_py.rufh.problems`).
"""

from __future__ import annotations

import asyncio
import email.message
import math

from handlers.streaming import StreamingHandler
from handlers.tus_headers import caller_max_size, visibility_of
from tusd_py.core import errors, protocol
from tusd_py.core.append import AppendRequest
from tusd_py.core.models import UploadInfo
from tusd_py.rufh import digests, fields
from tusd_py.rufh.version import INTEROP_HEADER, PARTIAL_UPLOAD_TYPE, Draft

#: The reason phrase of the interim status code.
INTERIM_STATUS = "104 Upload Resumption Supported"


class Progress:
    """Per-request draft state: completeness asked for, 104 progress pacing."""

    def __init__(self, draft: Draft, complete: bool, interval: float) -> None:
        self.draft = draft
        self.complete = complete
        self._interval = interval
        self._next = asyncio.get_running_loop().time() + interval
        self._last_offset = -1

    def due(self, offset: int) -> bool:
        """True when a progress 104 should go out for ``offset`` now."""
        if not self.draft.sends_progress or offset == self._last_offset:
            return False
        now = asyncio.get_running_loop().time()
        if now < self._next:
            return False
        self._next = now + self._interval
        self._last_offset = offset
        return True


# --- fields ---------------------------------------------------------------------


def upload_limit(handler: StreamingHandler, draft: Draft, info: UploadInfo | None) -> str:
    """``Upload-Limit``: ``max-size`` (the caller's), the remaining lifetime
    (``expires``/``max-age``) while the upload can expire; ``min-size=0`` when
    no limit applies."""
    principal = handler.principal
    if principal is not None:
        max_size = handler.ctx.service.max_size_for(principal)
    else:
        max_size = caller_max_size(handler)
    members: dict[str, int] = {}
    if max_size:
        members["max-size"] = max_size
    lifetime = handler.ctx.config.server.expiration
    if info is not None:
        if info.is_complete or info.expires_at is None:
            lifetime = 0
        else:
            lifetime = max(0, math.floor(info.expires_at - handler.ctx.service.clock()))
    if lifetime > 0:
        members[draft.expiry_key] = int(lifetime)
    if not members:
        members["min-size"] = 0
    return fields.dictionary(members)


def set_option_headers(handler: StreamingHandler) -> None:
    """OPTIONS: ``Upload-Limit`` and ``Accept-Patch: application/partial-upload``."""
    handler.set_header("Accept-Patch", PARTIAL_UPLOAD_TYPE)
    handler.set_header("Upload-Limit", upload_limit(handler, Draft(None), None))


def write_interim(handler: StreamingHandler, headers: list[tuple[str, str]]) -> bool:
    """Write a ``104`` interim response now (before the final response).

    Only for HTTP/1.1 requests whose final response has not started and
    that named an interop version we speak; returns whether it was written.
    A write error is left to the final response (the connection is gone).
    """
    draft = handler.draft
    if draft is None or not draft.sends_interim or handler.request.version != "HTTP/1.1":
        return False
    if handler._headers_written or handler._finished:
        return False
    stream = getattr(handler.request.connection, "stream", None)
    if stream is None or stream.closed():
        return False
    lines = [f"HTTP/1.1 {INTERIM_STATUS}", f"{INTEROP_HEADER}: {draft.interop}"]
    lines += [f"{name}: {value}" for name, value in headers]
    future = stream.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    future.add_done_callback(lambda f: f.exception())
    return True


def report_progress(handler: StreamingHandler, progress: Progress | None) -> None:
    """After a chunk: a progress 104 with ``Upload-Offset`` when one is due."""
    session = handler.session
    if progress is None or session is None or session.closed:
        return
    if progress.due(session.offset):
        write_interim(handler, [("Upload-Offset", str(session.offset))])


def _metadata(handler: StreamingHandler) -> str:
    """Metadata from a tus ``Upload-Metadata`` (if sent), ``Content-Type``
    (``filetype``) and ``Content-Disposition`` (``filename``)."""
    headers = handler.request.headers
    metadata = protocol.parse_metadata(headers.get("Upload-Metadata", "").strip())
    content_type = headers.get("Content-Type", "").strip()
    media = content_type.split(";")[0].strip().lower()
    if media and media not in (PARTIAL_UPLOAD_TYPE, protocol.OFFSET_CONTENT_TYPE):
        metadata.setdefault("filetype", content_type[:255].encode("utf-8", "replace"))
    disposition = headers.get("Content-Disposition")
    if disposition:
        message = email.message.Message()
        message["Content-Disposition"] = disposition[:1024]
        filename = message.get_filename()
        if filename:
            metadata.setdefault("filename", filename[:255].encode("utf-8", "replace"))
    raw = protocol.encode_metadata(metadata)
    if len(raw) > protocol.MAX_METADATA_BYTES:
        raise errors.InvalidMetadata(f"metadata is limited to {protocol.MAX_METADATA_BYTES} bytes")
    return raw


def _complete(draft: Draft, handler: StreamingHandler) -> bool:
    complete = draft.parse_complete(handler.request.headers)
    if complete is None:
        raise errors.InvalidHeader(f"{draft.complete_field} is required (?0 or ?1)")
    return complete


# --- creation -------------------------------------------------------------------


async def prepare_creation(handler: StreamingHandler) -> tuple[UploadInfo, Progress]:
    """Create the upload before its body is read: 104, then the body streams.

    Raises 400 (fields, inconsistent lengths), 413 (max size) and what
    admission raises; nothing is created then."""
    draft = handler.draft
    assert draft is not None
    await handler.admit("create")
    if handler.ctx.lifecycle.draining:
        raise errors.ServerShutdown(retry_after=5)
    headers = handler.request.headers
    handler.add_sticky_header("Upload-Limit", upload_limit(handler, draft, None))  # a 413 carries it too
    complete = _complete(draft, handler)
    progress = Progress(draft, complete, handler.ctx.config.server.progress_interval)
    principal = handler.principal
    assert principal is not None
    body_length = handler.content_length()
    has_body = handler.request_has_body()
    length_raw = headers.get("Upload-Length")
    length = fields.parse_length(length_raw) if length_raw is not None else None
    if complete and body_length is not None:
        if length is not None and length != body_length:
            raise errors.InconsistentLength(
                f"Upload-Length {length} and the complete body of {body_length} bytes disagree"
            )
        length = body_length
    if length is not None and body_length is not None and body_length > length:
        raise errors.InconsistentLength(f"the body of {body_length} bytes exceeds Upload-Length {length}")
    checksum = digests.request_checksum(headers, whole=complete)
    metadata_raw = _metadata(handler)
    visibility = visibility_of(protocol.parse_metadata(metadata_raw))
    if has_body:
        await handler.reserve_stream(principal)
    info = await handler.ctx.service.create(
        principal, length=length, metadata_raw=metadata_raw, visibility=visibility
    )
    handler.upload_id = info.id
    location = handler.upload_url(info.id)
    handler.add_sticky_header("Location", location)
    limit = upload_limit(handler, draft, info)
    handler.add_sticky_header("Upload-Limit", limit)
    write_interim(handler, [("Location", location), ("Upload-Limit", limit)])
    if has_body:
        request = AppendRequest(offset=0, content_length=body_length, checksum=checksum)
        await handler.start_stream(principal, info.id, request)
    return info, progress


async def finish_creation(handler: StreamingHandler, info: UploadInfo, progress: Progress) -> None:
    """The body is in: 201 with ``Location``, ``Upload-Offset`` and completeness."""
    if handler.session is not None:
        info = await handler.finish_stream()
    if progress.complete:
        info = await _settle_complete(handler, info)
    _answer(handler, info, progress)
    handler.set_status(201)


# --- offset retrieval -------------------------------------------------------------


async def head(handler: StreamingHandler, upload_id: str) -> None:
    """204 with the upload's offset, completeness, length and limits."""
    draft = handler.draft
    assert draft is not None and handler.principal is not None
    info = await handler.ctx.service.get(handler.principal, upload_id)
    handler.set_header("Cache-Control", "no-store")
    handler.set_header("Upload-Offset", str(info.offset))
    handler.set_header(*draft.complete_header(info.is_complete))
    if info.length is not None:
        handler.set_header("Upload-Length", str(info.length))
    handler.set_header("Upload-Limit", upload_limit(handler, draft, info))
    handler.set_status(204)


# --- append ---------------------------------------------------------------------


async def prepare_append(handler: StreamingHandler) -> Progress:
    """Validate a draft PATCH and start streaming its body into the upload.

    Raises 415 (media type, interop 6 on), 400 (fields; appending to a
    complete upload: completed-upload / inconsistent-upload-length), 409
    mismatching-upload-offset with ``Upload-Offset`` and ``Upload-Complete:
    ?0``, and what :meth:`UploadService.begin_append` raises."""
    draft = handler.draft
    assert draft is not None and handler.principal is not None and handler.upload_id is not None
    headers = handler.request.headers
    if draft.needs_partial_type:
        media = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != PARTIAL_UPLOAD_TYPE:
            raise errors.InvalidContentType(
                f"an append needs Content-Type: {PARTIAL_UPLOAD_TYPE}"
                + (f" (got {media[:60]!r})" if media else "")
            )
    offset = fields.parse_offset(headers.get("Upload-Offset"))
    handler.provided_offset = offset
    complete = _complete(draft, handler)
    body_length = handler.content_length()
    length_raw = headers.get("Upload-Length")
    declared = fields.parse_length(length_raw) if length_raw is not None else None
    service = handler.ctx.service
    info = await service.get(handler.principal, handler.upload_id)
    handler.add_sticky_header("Upload-Limit", upload_limit(handler, draft, info))
    if info.is_complete:
        if handler.request_has_body():
            raise errors.InconsistentLength("the upload is already complete; it cannot take more bytes")
        raise errors.UploadCompleted()
    if offset != info.offset:
        raise _mismatch(draft, offset, info.offset)
    known = info.length if info.length is not None else declared
    if complete and body_length is not None:
        ends_at = offset + body_length
        if known is not None and known != ends_at:
            raise errors.InconsistentLength(
                f"Upload-Complete is set but the body ends at {ends_at}, not at the upload length {known}"
            )
        known = ends_at
    # ``Upload-Complete: ?0`` on a body that reaches a known length is not
    # refused: clients reading a stream learn it ended only after sending
    # (tus-js-client); the upload completes and the answer says so.
    request = AppendRequest(
        offset=offset,
        content_length=body_length,
        declared_length=known if info.length is None else None,
        checksum=digests.request_checksum(headers, whole=False),
    )
    try:
        await handler.start_stream(handler.principal, handler.upload_id, request)
    except errors.OffsetMismatch:
        current = await service.get(handler.principal, handler.upload_id)
        raise _mismatch(draft, offset, current.offset) from None
    return Progress(draft, complete, handler.ctx.config.server.progress_interval)


async def finish_append(handler: StreamingHandler, progress: Progress) -> None:
    """The body is in: 204 with ``Upload-Offset`` and the completeness field."""
    info = await handler.finish_stream()
    if progress.complete:
        info = await _settle_complete(handler, info)
    _check_repr_digest(handler, info)
    _answer(handler, info, progress)
    handler.set_status(204)


# --- shared -----------------------------------------------------------------------


def _mismatch(draft: Draft, provided: int, expected: int) -> errors.OffsetMismatch:
    name, value = draft.complete_header(False)
    return errors.OffsetMismatch(
        f"Upload-Offset is {provided} but the upload holds {expected} bytes; resume from {expected}",
        headers={"Upload-Offset": str(expected), name: value},
    )


async def _settle_complete(handler: StreamingHandler, info: UploadInfo) -> UploadInfo:
    """A request that said complete: a body of unknown length (chunked) now
    fixes the length at the offset; a body shorter than the known length is
    an inconsistency (the bytes received are kept)."""
    if info.is_complete:
        return info
    if info.length is not None:
        raise errors.InconsistentLength(
            f"Upload-Complete is set but the upload holds {info.offset} of {info.length} bytes"
        )
    principal = handler.principal
    assert principal is not None
    session = await handler.ctx.service.begin_append(
        principal,
        info.id,
        AppendRequest(offset=info.offset, content_length=0, declared_length=info.offset),
        lambda: None,
    )
    return await session.commit()


def _check_repr_digest(handler: StreamingHandler, info: UploadInfo) -> None:
    """An append that completed the upload with ``Repr-Digest``: compare it
    with the whole-upload digest when known (every part carried a
    ``Content-Digest`` of that algorithm). Raises 400 ``ERR_CHECKSUM_MISMATCH``
    (the upload stays complete); an unknown digest is not checked."""
    if not info.is_complete or not info.checksum:
        return
    claimed = digests.pick("Repr-Digest", handler.request.headers.get("Repr-Digest"))
    algorithm, _, hex_digest = info.checksum.partition(":")
    if claimed is not None and claimed.algorithm == algorithm and claimed.digest.hex() != hex_digest:
        raise errors.ChecksumMismatch(
            f"the completed upload's {algorithm} does not match Repr-Digest (bytes differ from the original)"
        )


def _answer(handler: StreamingHandler, info: UploadInfo, progress: Progress) -> None:
    draft = progress.draft
    handler.set_header("Upload-Offset", str(info.offset))
    handler.set_header(*draft.complete_header(info.is_complete))
    if info.is_complete:
        handler.clear_header("Upload-Limit")
        if digests.wanted(handler.request.headers):
            field = digests.repr_digest_field(info.checksum)
            if field:
                handler.set_header("Repr-Digest", field)
