"""``CollectionHandler`` at ``<base_path>``: OPTIONS discovery, POST creation
and GET listing (REST, :mod:`handlers.listing`; no ``Tus-Resumable`` needed).

POST implements creation, creation-with-upload (body with
``Content-Type: application/offset+octet-stream``), creation-defer-length and
the final upload of concatenation.
"""

from __future__ import annotations

from handlers import listing, rufh
from handlers.streaming import StreamingHandler
from handlers.tus_headers import set_discovery_headers, set_expires, visibility_of
from tusd_py.core import errors, protocol
from tusd_py.core.append import AppendRequest
from tusd_py.core.models import UploadInfo


class CollectionHandler(StreamingHandler):
    SUPPORTED_METHODS = ("OPTIONS", "POST", "GET")
    raw_body_appends = True

    created: UploadInfo | None = None
    #: Set for an IETF draft creation (:mod:`handlers.rufh`).
    progress: rufh.Progress | None = None

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        if self.request.method == "GET":
            await self.admit("request")
            return
        if self.detect_draft() is not None:
            self.created, self.progress = await rufh.prepare_creation(self)
            return
        self.require_tus_version()
        partial = self.request.headers.get("Upload-Concat", "").strip() == "partial"
        await self.admit("partial" if partial else "create")
        if self.ctx.lifecycle.draining:
            raise errors.ServerShutdown(retry_after=5)
        await self._create()

    def options(self) -> None:
        if self.is_preflight():
            self.answer_preflight()
            return
        set_discovery_headers(self)
        rufh.set_option_headers(self)
        self.set_status(204)

    async def get(self) -> None:
        await listing.serve(self)

    async def _create(self) -> None:
        headers = self.request.headers
        service = self.ctx.service
        principal = self.principal
        assert principal is not None
        has_body = self.request_has_body()
        if has_body:
            content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type != protocol.OFFSET_CONTENT_TYPE:
                raise errors.InvalidContentType(
                    "a creation request with a body needs Content-Type: application/offset+octet-stream"
                )
        metadata_raw = headers.get("Upload-Metadata", "").strip()
        metadata = protocol.parse_metadata(metadata_raw)
        visibility = visibility_of(metadata)
        length_header = headers.get("Upload-Length")
        defer_header = headers.get("Upload-Defer-Length")
        concat_header = headers.get("Upload-Concat")
        concat = (
            protocol.parse_concat(concat_header, self.ctx.config.server.base_path)
            if concat_header is not None
            else None
        )
        if concat is not None and concat.kind == "final":
            if length_header is not None or defer_header is not None:
                raise errors.InvalidLength(
                    "a final upload must not carry Upload-Length: its length is the sum of its partials"
                )
            if has_body:
                raise errors.ModifyFinal("a final upload cannot carry a body")
            info = await service.create_final(
                principal,
                partial_ids=concat.partial_ids,
                concat_raw=concat_header.strip() if concat_header else "",
                metadata_raw=metadata_raw,
                visibility=visibility,
            )
            self._created(info)
            return
        if length_header is not None and defer_header is not None:
            raise errors.InvalidLength("send either Upload-Length or Upload-Defer-Length, not both")
        if length_header is None and defer_header is None:
            raise errors.InvalidLength("Upload-Length or Upload-Defer-Length: 1 is required")
        length = self._parse_length(length_header) if length_header is not None else None
        if defer_header is not None:
            protocol.parse_defer_length(defer_header)
        body_length = self.content_length()
        if length is not None and body_length is not None and body_length > length:
            raise errors.UploadSizeExceeded(f"the body of {body_length} bytes exceeds Upload-Length {length}")
        if has_body:
            # the slot first: a refused body must not leave an orphan upload behind
            await self.reserve_stream(principal)
        info = await service.create(
            principal,
            length=length,
            metadata_raw=metadata_raw,
            partial=concat is not None,
            visibility=visibility,
        )
        self._created(info)
        if has_body:
            await self.start_stream(principal, info.id, AppendRequest(offset=0, content_length=body_length))

    def _parse_length(self, header: str) -> int:
        """``Upload-Length``; a number beyond 2**63-1 is 413 when a maximum
        size applies to the caller (the message says which), else 400."""
        text = header.strip()
        if text.isascii() and text.isdigit() and protocol.exceeds_int64(text):
            assert self.principal is not None
            limit = self.ctx.service.max_size_for(self.principal)
            if limit:
                shown = protocol.abbreviate_digits(text)
                raise errors.MaxSizeExceeded(
                    f"Upload-Length {shown} exceeds the maximum size of {limit} bytes"
                )
        return protocol.parse_length(header)

    def _created(self, info: UploadInfo) -> None:
        self.created = info
        self.upload_id = info.id
        self.add_sticky_header("Location", self.upload_url(info.id))

    async def data_received(self, chunk: bytes) -> None:
        await super().data_received(chunk)
        rufh.report_progress(self, self.progress)

    async def post(self) -> None:
        info = self.created
        assert info is not None
        if self.progress is not None:
            await rufh.finish_creation(self, info, self.progress)
            return
        if self.session is not None:
            info = await self.finish_stream()
            self.set_header("Upload-Offset", str(info.offset))
        set_expires(self, info)
        self.set_status(201)
