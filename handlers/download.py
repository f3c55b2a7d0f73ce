"""GET of a complete upload: Range, ETag, safe Content-Type/-Disposition.

The type comes from the sniffed MIME only when it is on :data:`INLINE_TYPES`
(served ``inline``); anything else is ``application/octet-stream`` with
``attachment`` and a sanitized filename. Storages that can hand out direct
URLs (S3 presigned) answer with a 302 instead of streaming.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

import tornado.iostream

from storage.base import ContentServer
from tusd_py import errors, protocol
from tusd_py.models import UploadInfo

if TYPE_CHECKING:
    from handlers.base import BaseHandler

INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "text/plain",
        "application/pdf",
    }
)


def etag_of(info: UploadInfo) -> str:
    """A strong validator: a complete upload's bytes never change."""
    return f'"{info.id}-{info.length}-{int(info.updated_at * 1000)}"'


def content_headers(info: UploadInfo) -> tuple[str, str]:
    """``(Content-Type, Content-Disposition)`` for ``info``."""
    name = protocol.safe_filename(info.filename or "", info.id)
    if info.mime in INLINE_TYPES:
        kind, disposition = info.mime, "inline"
    else:
        kind, disposition = "application/octet-stream", "attachment"
    encoded = quote(info.filename or name, safe="")
    return kind, f"{disposition}; filename=\"{name}\"; filename*=UTF-8''{encoded}"


async def resolve(handler: BaseHandler, upload_id: str) -> UploadInfo:
    """The upload the caller may download; raises 401/404/409."""
    principal = handler.principal
    if principal is None:
        raise errors.Unauthenticated("downloads need an Authorization: Bearer token")
    return await handler.ctx.service.get(principal, upload_id)


async def serve(handler: BaseHandler, upload_id: str) -> None:
    """Answer GET for ``upload_id``."""
    if not handler.ctx.config.server.downloads:
        raise errors.MethodNotAllowed("downloads are disabled on this server")
    info = await resolve(handler, upload_id)
    if not info.is_complete or info.length is None:
        raise errors.UploadIncomplete(
            f"upload is not complete ({info.offset} of "
            f"{info.length if info.length is not None else '?'} bytes); "
            "downloads are available once it is"
        )
    storage = handler.ctx.composer.storage(info.storage)
    etag = etag_of(info)
    handler.set_header("ETag", etag)
    handler.set_header("Cache-Control", "private, no-cache")
    kind, disposition = content_headers(info)
    if isinstance(storage, ContentServer):
        url = await storage.download_url(info, info.filename)
        if url is not None:
            handler.redirect(url, status=302)
            return
    inm = handler.request.headers.get("If-None-Match")
    if inm is not None and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        handler.set_status(304)
        handler.finish()
        return
    length = info.length
    start, end = 0, length - 1
    status = 200
    range_header = handler.request.headers.get("Range")
    if range_header is not None and length > 0:
        parsed = protocol.parse_range(range_header, length)
        if parsed is not None:
            start, end = parsed
            status = 206
            handler.set_header("Content-Range", f"bytes {start}-{end}/{length}")
    elif range_header is not None and length == 0:
        protocol.parse_range(range_header, length)
    handler.set_status(status)
    handler.set_header("Accept-Ranges", "bytes")
    handler.set_header("Content-Type", kind)
    handler.set_header("Content-Disposition", disposition)
    handler.set_header("Content-Length", str(end - start + 1 if length else 0))
    if length == 0:
        handler.finish()
        return
    try:
        async for block in storage.read(info, start, end):
            handler.write(block)
            await handler.flush()
    except tornado.iostream.StreamClosedError:
        return  # the client went away mid-body (it can resume with Range): nothing to answer
    handler.finish()
