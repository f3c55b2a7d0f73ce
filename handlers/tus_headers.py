"""Response headers shared by tus handlers."""

from __future__ import annotations

from collections.abc import Callable

from handlers.base import BaseHandler
from tusd_py.core import auth_errors, errors, protocol
from tusd_py.core.models import ConcatKind, UploadInfo


def set_discovery_headers(handler: BaseHandler) -> None:
    """``OPTIONS`` headers: versions, extensions, the caller's maximum size
    (:func:`caller_max_size`), checksum algorithms."""
    handler.set_header("Tus-Version", ",".join(protocol.SUPPORTED_VERSIONS))
    extensions = handler.ctx.service.tus_extensions()
    if extensions:
        handler.set_header("Tus-Extension", ",".join(extensions))
    max_size = caller_max_size(handler)
    if max_size:
        handler.set_header("Tus-Max-Size", str(max_size))
    handler.add_header("Vary", "Authorization")
    if "checksum" in extensions:
        handler.set_header("Tus-Checksum-Algorithm", ",".join(protocol.CHECKSUM_ALGORITHMS))


def caller_max_size(handler: BaseHandler) -> int:
    """The largest upload the caller may create (0 = no limit): its tier's
    maximum (capped by ``server.max_size``) when the request carries a valid
    credential, else ``server.max_size``. Never raises for a bad credential."""
    try:
        principal = handler.ctx.authenticator.authenticate(handler.request.headers)
    except auth_errors.Unauthenticated:
        principal = None
    if principal is None:
        return handler.ctx.config.server.max_size
    return handler.ctx.service.max_size_for(principal)


def expires_value(info: UploadInfo, http_date: Callable[[float], str]) -> str | None:
    """``Upload-Expires`` while the upload can still expire, else None."""
    if info.expires_at is not None and not info.is_complete:
        return http_date(info.expires_at)
    return None


def set_expires(handler: BaseHandler, info: UploadInfo) -> None:
    """``Upload-Expires`` while the upload can still expire."""
    value = expires_value(info, handler.http_date)
    if value is not None:
        handler.set_header("Upload-Expires", value)


def upload_headers(info: UploadInfo, http_date: Callable[[float], str]) -> list[tuple[str, str]]:
    """The HEAD headers describing ``info`` (``http_date`` formats ``Upload-Expires``)."""
    headers = [("Cache-Control", "no-store")]
    unfinished_final = info.concat is ConcatKind.FINAL and not info.is_complete
    if not unfinished_final:
        headers.append(("Upload-Offset", str(info.offset)))
    if info.length is not None:
        headers.append(("Upload-Length", str(info.length)))
    elif info.concat is not ConcatKind.FINAL:
        headers.append(("Upload-Defer-Length", "1"))
    if info.metadata_raw:
        headers.append(("Upload-Metadata", info.metadata_raw))
    if info.concat_raw:
        headers.append(("Upload-Concat", info.concat_raw))
    expires = expires_value(info, http_date)
    if expires is not None:
        headers.append(("Upload-Expires", expires))
    return headers


def set_upload_headers(handler: BaseHandler, info: UploadInfo) -> None:
    """The HEAD headers describing ``info`` (:func:`upload_headers`)."""
    for name, value in upload_headers(info, handler.http_date):
        handler.set_header(name, value)


def visibility_of(metadata: dict[str, bytes]) -> str | None:
    """The ``visibility`` metadata entry (``public``/``private``), None when absent; 400 otherwise."""
    raw = metadata.get("visibility")
    if raw is None:
        return None
    value = raw.decode("ascii", "replace").strip().lower()
    if value not in ("public", "private"):
        raise errors.InvalidMetadata("metadata visibility must be 'public' or 'private'")
    return value
