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

from tusd_py.auth import links
from tusd_py.core import auth_errors, errors, protocol
from tusd_py.core.models import Principal, UploadInfo, may_access
from tusd_py.core.service import downloadable_length

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


def has_link(handler: BaseHandler) -> bool:
    """True if the request carries signed-link parameters."""
    args = handler.request.query_arguments
    return links.EXPIRES_PARAM in args or links.SIGNATURE_PARAM in args


async def resolve(handler: BaseHandler, upload_id: str) -> UploadInfo:
    """The upload the caller may download (SPEC §5 visibility).

    * a signed link (``?expires=&signature=``) opens any upload it was made
      for until it expires (403 if tampered with or expired);
    * the owner's (or an admin's) token opens their uploads;
    * a ``public`` upload needs no token; another user's token on a private
      upload gets 404 (no existence leak), no token at all gets 401.
    """
    service = handler.ctx.service
    if has_link(handler):
        signer = handler.ctx.links
        if signer is None:
            raise auth_errors.LinkInvalid("this server does not issue download links")
        signer.verify(
            upload_id,
            handler.get_query_argument(links.EXPIRES_PARAM, None),
            handler.get_query_argument(links.SIGNATURE_PARAM, None),
        )
        info = await service.load(upload_id)
        return await service.get(Principal(user=info.owner), upload_id)
    principal = handler.principal
    try:
        info = await service.load(upload_id)
    except (errors.UploadNotFound, errors.UploadGone):
        if principal is None:
            raise auth_errors.Unauthenticated(
                "downloads of private uploads need an Authorization: Bearer token or a signed link"
            ) from None
        raise
    if principal is not None and may_access(principal, info):
        return await service.get(principal, upload_id)
    if info.visibility == "public":
        return await service.get(Principal(user=info.owner), upload_id)
    if principal is None:
        raise auth_errors.Unauthenticated(
            "downloads of private uploads need an Authorization: Bearer token or a signed link"
        )
    raise errors.UploadNotFound()


async def serve(handler: BaseHandler, upload_id: str) -> None:
    """Answer GET for ``upload_id``."""
    if not handler.ctx.config.server.downloads:
        raise errors.MethodNotAllowed("downloads are disabled on this server")
    info = await resolve(handler, upload_id)
    length = downloadable_length(info)
    service = handler.ctx.service
    etag = etag_of(info)
    handler.set_header("ETag", etag)
    handler.set_header("Cache-Control", "private, no-cache")
    kind, disposition = content_headers(info)
    url = await service.download_url(info)
    if url is not None:
        handler.redirect(url, status=302)
        return
    inm = handler.request.headers.get("If-None-Match")
    if inm is not None and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        handler.set_status(304)
        handler.finish()
        return
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
        async for block in service.read(info, start, end):
            handler.write(block)
            await handler.flush()
    except tornado.iostream.StreamClosedError:
        return  # the client went away mid-body (it can resume with Range): nothing to answer
    handler.finish()
