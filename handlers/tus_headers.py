"""Response headers shared by tus handlers."""

from __future__ import annotations

from handlers.base import BaseHandler
from tusd_py import protocol
from tusd_py.models import ConcatKind, UploadInfo


def set_discovery_headers(handler: BaseHandler) -> None:
    """``OPTIONS`` headers: versions, extensions, limits, checksum algorithms."""
    handler.set_header("Tus-Version", ",".join(protocol.SUPPORTED_VERSIONS))
    extensions = handler.ctx.composer.tus_extensions()
    if extensions:
        handler.set_header("Tus-Extension", ",".join(extensions))
    if handler.ctx.config.server.max_size:
        handler.set_header("Tus-Max-Size", str(handler.ctx.config.server.max_size))
    if "checksum" in extensions:
        handler.set_header("Tus-Checksum-Algorithm", ",".join(protocol.CHECKSUM_ALGORITHMS))


def set_expires(handler: BaseHandler, info: UploadInfo) -> None:
    """``Upload-Expires`` while the upload can still expire."""
    if info.expires_at is not None and not info.is_complete:
        handler.set_header("Upload-Expires", protocol.http_date(info.expires_at))


def set_upload_headers(handler: BaseHandler, info: UploadInfo) -> None:
    """The HEAD headers describing ``info``."""
    handler.set_header("Cache-Control", "no-store")
    unfinished_final = info.concat is ConcatKind.FINAL and not info.is_complete
    if not unfinished_final:
        handler.set_header("Upload-Offset", str(info.offset))
    if info.length is not None:
        handler.set_header("Upload-Length", str(info.length))
    elif info.concat is not ConcatKind.FINAL:
        handler.set_header("Upload-Defer-Length", "1")
    if info.metadata_raw:
        handler.set_header("Upload-Metadata", info.metadata_raw)
    if info.concat_raw:
        handler.set_header("Upload-Concat", info.concat_raw)
    set_expires(handler, info)
