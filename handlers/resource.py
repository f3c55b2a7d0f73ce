"""``UploadHandler`` at ``<base_path>{id}``: HEAD, PATCH, DELETE, GET, OPTIONS.

``POST`` is accepted only with ``X-HTTP-Method-Override`` (PATCH, HEAD,
DELETE, GET), for clients behind proxies that drop those methods.
"""

from __future__ import annotations

from handlers import download, rufh
from handlers.streaming import StreamingHandler
from handlers.tus_headers import set_discovery_headers, set_expires, set_upload_headers
from tusd_py.core import errors, protocol
from tusd_py.core.append import AppendRequest

_OVERRIDABLE = {"PATCH", "HEAD", "DELETE", "GET"}


class UploadHandler(StreamingHandler):
    SUPPORTED_METHODS = ("HEAD", "PATCH", "DELETE", "GET", "OPTIONS", "POST")
    raw_body_appends = True
    #: Set for an IETF draft append (:mod:`handlers.rufh`).
    progress: rufh.Progress | None = None

    def allowed_methods(self) -> tuple[str, ...]:
        """POST only carries an override, so it is not listed; nor are GET with
        downloads off and DELETE without termination."""
        left_out = {"POST"}
        if not self.ctx.config.server.downloads:
            left_out.add("GET")
        if "termination" not in self.ctx.service.tus_extensions():
            left_out.add("DELETE")
        return tuple(m for m in super().allowed_methods() if m not in left_out)

    async def prepare(self) -> None:
        method = self.request.method or ""
        if method in ("HEAD", "PATCH", "DELETE") and self.detect_draft() is not None:
            self.upload_id = self.path_args[0] if self.path_args else None
            await self.admit("request")
            if method == "PATCH":
                self.progress = await rufh.prepare_append(self)
            return
        if method == "POST":
            override = self.request.headers.get("X-HTTP-Method-Override", "").strip().upper()
            if override not in _OVERRIDABLE:
                raise errors.MethodNotAllowed(
                    "POST on an upload URL needs X-HTTP-Method-Override: PATCH, HEAD, DELETE or GET"
                )
            self.request.method = method = override
        self.upload_id = self.path_args[0] if self.path_args else None
        if method == "OPTIONS":
            return
        if method != "GET":
            self.require_tus_version()
        if method == "GET" and download.has_link(self):
            await self.check_limits("request")  # the link is the credential (download.resolve)
        else:
            await self.admit("request", required=method != "GET")
        if method == "PATCH":
            await self._prepare_patch()

    async def _prepare_patch(self) -> None:
        headers = self.request.headers
        content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != protocol.OFFSET_CONTENT_TYPE:
            raise errors.InvalidContentType(
                "PATCH needs Content-Type: application/offset+octet-stream"
                + (f" (got {content_type[:60]!r})" if content_type else "")
            )
        offset = protocol.parse_offset(headers.get("Upload-Offset"))
        declared = headers.get("Upload-Length")
        checksum = headers.get("Upload-Checksum")
        request = AppendRequest(
            offset=offset,
            content_length=self.content_length(),
            declared_length=protocol.parse_length(declared) if declared is not None else None,
            checksum=protocol.parse_checksum(checksum) if checksum is not None else None,
        )
        assert self.principal is not None and self.upload_id is not None
        await self.start_stream(self.principal, self.upload_id, request)

    def options(self, upload_id: str) -> None:
        if self.is_preflight():
            self.answer_preflight()
            return
        set_discovery_headers(self)
        rufh.set_option_headers(self)
        self.set_status(204)

    async def head(self, upload_id: str) -> None:
        if self.draft is not None:
            await rufh.head(self, upload_id)
            return
        assert self.principal is not None
        info = await self.ctx.service.get(self.principal, upload_id)
        set_upload_headers(self, info)
        self.set_status(200)

    async def data_received(self, chunk: bytes) -> None:
        await super().data_received(chunk)
        rufh.report_progress(self, self.progress)

    async def patch(self, upload_id: str) -> None:
        if self.progress is not None:
            await rufh.finish_append(self, self.progress)
            return
        info = await self.finish_stream()
        self.set_header("Upload-Offset", str(info.offset))
        set_expires(self, info)
        self.set_status(204)

    async def delete(self, upload_id: str) -> None:
        assert self.principal is not None
        await self.ctx.service.terminate(self.principal, upload_id)
        self.set_status(204)

    async def get(self, upload_id: str) -> None:
        await download.serve(self, upload_id)
