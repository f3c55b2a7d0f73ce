"""``IndexHandler`` at ``/index``: one-shot uploads for clients without tus.

Bodies:

* ``multipart/form-data`` — the part named ``file`` is streamed out of the
  body with :class:`tusd_py.rest.formdata.FileFieldExtractor` (other fields are
  skipped); its size is unknown up front, so the upload is created with a
  deferred length and the length is declared when the part ends.
* ``application/octet-stream`` — the raw body, named by ``X-Filename``
  (percent-encoded UTF-8 allowed); ``Content-Length`` is the upload length,
  checked against the caller's limit (413) before a byte is read.

Either way a tus upload is created and the bytes go through the same
:class:`~tusd_py.core.service.AppendSession` as a PATCH (stream slots, limits,
S3 relay, progress publishing, type checks). The first
:data:`~tusd_py.core.append.SNIFF_BYTES` are gathered before the first write so
the type check sees a full head. A body refused by a check (413, 415, bad
multipart) deletes its upload; a body cut by the network keeps its bytes and
can be finished with tus PATCH at ``upload_url``.

``Idempotency-Key``: a retry with the same key (same user) does not create a
second upload; it answers 201 with the original document when that upload is
complete, or 409 ``ERR_UPLOAD_INCOMPLETE`` with ``upload_url`` and ``offset``
to finish it with tus. The same key sent with a different request (another
length, filename, media type, metadata or visibility: see
:func:`tusd_py.rest.oneshot.request_fingerprint`) is refused with 422
``ERR_IDEMPOTENCY_KEY_REUSED`` before a byte of its body is stored.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import unquote

import tornado.web

from handlers.streaming import StreamingHandler
from tusd_py.core import errors, protocol
from tusd_py.core.append import SNIFF_BYTES, AppendRequest
from tusd_py.core.models import UploadInfo
from tusd_py.ops.context import AppContext
from tusd_py.rest.formdata import MULTIPART_TYPE, FileFieldExtractor, boundary_of
from tusd_py.rest.oneshot import (
    IdempotencyKeys,
    declare_received_length,
    index_document,
    parse_idempotency_key,
    request_fingerprint,
)

log = logging.getLogger("tusd_py.app")

RAW_TYPE = "application/octet-stream"
FILE_FIELD = "file"


@tornado.web.stream_request_body
class IndexHandler(StreamingHandler):
    SUPPORTED_METHODS = ("POST", "OPTIONS")

    created: UploadInfo | None = None
    _extractor: FileFieldExtractor | None = None
    _metadata_recorded: bool = False
    _idempotency_key: str | None = None
    _fingerprint: str = ""
    _discarding: bool = False

    def initialize(self, ctx: AppContext) -> None:
        super().initialize(ctx)
        self._head: list[bytes] = []
        self._head_size = 0
        self._head_sent = False

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        await self.admit("create")
        if self.ctx.lifecycle.draining:
            raise errors.ServerShutdown(retry_after=5)
        await self._create()

    def options(self) -> None:
        if self.is_preflight():
            self.answer_preflight()
            return
        self.set_header("Allow", "POST, OPTIONS")
        self.set_status(204)

    # --- creation -----------------------------------------------------------------

    async def _create(self) -> None:
        principal = self.principal
        assert principal is not None
        headers = self.request.headers
        content_type = headers.get("Content-Type", "")
        kind = content_type.split(";")[0].strip().lower()
        metadata: dict[str, bytes] = {}
        if kind == MULTIPART_TYPE:
            self._extractor = FileFieldExtractor(boundary_of(content_type), FILE_FIELD)
            length: int | None = None
            content_length = None
        elif kind == RAW_TYPE:
            content_length = self.content_length()
            chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
            length = None if chunked else (content_length or 0)
            name = unquote(headers.get("X-Filename", "")).replace("\\", "/").rsplit("/", 1)[-1].strip()
            if name:
                metadata["filename"] = name.encode()
        else:
            raise errors.InvalidContentType(
                "POST /index takes multipart/form-data (the file in a field named 'file') or "
                "application/octet-stream with X-Filename" + (f" (got {kind[:60]!r})" if kind else "")
            )
        visibility = self.get_query_argument("visibility", None)
        if visibility is not None and visibility not in ("public", "private"):
            raise errors.InvalidQuery("visibility must be public or private")
        service = self.ctx.service
        keys = IdempotencyKeys(service, self.ctx.config.api.idempotency_ttl)
        key = parse_idempotency_key(headers.get("Idempotency-Key"))
        self._fingerprint = request_fingerprint(
            self.request.method or "POST", self.request.path, headers, visibility
        )
        if key is not None:
            existing = await keys.lookup(principal, key, self._fingerprint)
            if existing is not None:
                self._replay(existing)
                return
        info = await service.create(
            principal,
            length=length,
            metadata_raw=protocol.encode_metadata(metadata) if metadata else "",
            visibility=visibility,
        )
        try:
            if key is not None:
                holder = await keys.claim(principal, key, info, self._fingerprint)
                if holder != info.id:
                    await service.terminate(principal, info.id)
                    await self._replay_winner(keys, key)
                    return
                self._idempotency_key = key
            self.created = info
            self.upload_id = info.id
            self.add_sticky_header("Location", self.upload_url(info.id))
            if length != 0:
                await self.start_stream(
                    principal, info.id, AppendRequest(offset=0, content_length=content_length)
                )
        except BaseException:
            # Refused before the body (stream slots, lock, backend): leave nothing behind.
            if self.session is None:
                await self._discard(info.id)
            raise

    async def _replay_winner(self, keys: IdempotencyKeys, key: str) -> None:
        assert self.principal is not None
        winner = await keys.lookup(self.principal, key, self._fingerprint)
        if winner is None:
            raise errors.UploadLocked(
                "a request with the same Idempotency-Key failed meanwhile; retry",
                headers={"Retry-After": "1"},
            )
        self._replay(winner)

    def _replay(self, info: UploadInfo) -> None:
        """Answer a retried request with the upload its key is bound to."""
        self.upload_id = info.id
        self.set_header("Idempotent-Replayed", "true")
        self.set_header("Location", self.upload_url(info.id))
        document = index_document(info, self.ctx.config.server.base_path)
        if info.is_complete:
            self.finish_json(201, document)
            return
        self.error_code = errors.UploadIncomplete.code
        self.finish_json(
            409,
            {
                "error": {
                    "code": errors.UploadIncomplete.code,
                    "message": (
                        f"an upload with this Idempotency-Key exists and holds {info.offset} bytes; "
                        "finish it with tus PATCH at upload_url from that offset"
                        + (" (send Upload-Length with the last PATCH)" if info.length is None else "")
                    ),
                },
                **document,
            },
        )

    # --- body ---------------------------------------------------------------------

    async def data_received(self, chunk: bytes) -> None:
        session = self.session
        if session is None or self._finished or session.closed:
            return
        extractor = self._extractor
        if extractor is None:
            await self._emit(chunk)
            return
        self.touch()
        try:
            pieces = extractor.feed(chunk)
        except errors.InvalidMultipart as exc:
            self._refuse(exc)
            return
        if extractor.found and not self._metadata_recorded:
            await self._record_part_metadata(extractor)
        if pieces:
            await self._emit(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def touch(self) -> None:
        """Count request activity for the idle timeout (envelope bytes too)."""
        self._last_activity = asyncio.get_running_loop().time()

    async def _record_part_metadata(self, extractor: FileFieldExtractor) -> None:
        self._metadata_recorded = True
        metadata: dict[str, bytes] = {}
        if extractor.filename:
            metadata["filename"] = extractor.filename.encode()
        if extractor.content_type:
            metadata["filetype"] = extractor.content_type.encode()
        if metadata and self.created is not None and self.principal is not None:
            await self.ctx.service.set_metadata(self.principal, self.created.id, metadata)

    async def _emit(self, data: bytes) -> None:
        """Write ``data`` after the first ``SNIFF_BYTES`` have been gathered."""
        if not self._head_sent:
            self._head.append(data)
            self._head_size += len(data)
            if self._head_size < SNIFF_BYTES:
                return
            data = b"".join(self._head)
            self._head, self._head_sent = [], True
        await super().data_received(data)
        if self._finished:
            self._discard_upload()

    async def _flush_head(self) -> None:
        if self._head_sent:
            return
        self._head_sent = True
        data, self._head = b"".join(self._head), []
        if data:
            assert self.session is not None
            await self.session.write(data)

    async def post(self) -> None:
        if self._finished:
            return
        info = self.created
        assert info is not None
        if self.session is not None:
            principal = self.principal
            assert principal is not None
            try:
                if self._extractor is not None:
                    self._extractor.finish()
                await self._flush_head()
                info = await self.finish_stream()
                if info.length is None:
                    info = await declare_received_length(self.ctx.service, principal, info.id)
            except errors.TusError as exc:
                if exc.status < 500:
                    self._end_stream()
                    self._discard_upload()
                raise
        self.finish_json(201, index_document(info, self.ctx.config.server.base_path))

    # --- refusal ------------------------------------------------------------------

    def _refuse(self, error: errors.TusError) -> None:
        """Answer ``error`` now, stop reading and delete the upload."""
        if self.session is not None:
            self.bytes_received = self.session.received
        self.fail(error)
        self._end_stream()
        self._discard_upload()

    def _discard_upload(self) -> None:
        """Delete the upload (and its key) once the stream has ended."""
        if self._discarding or self.created is None or self.principal is None:
            return
        self._discarding = True
        self.ctx.lifecycle.spawn(self._discard(self.created.id))

    async def _discard(self, upload_id: str) -> None:
        """Terminate ``upload_id`` after the stream ended; forget its key."""
        if self._ended is not None:
            await self._ended
        assert self.principal is not None
        try:
            await self.ctx.service.terminate(self.principal, upload_id)
        except (errors.UploadNotFound, errors.UploadGone):
            pass
        except errors.TusError as exc:
            log.warning("could not delete refused upload %s: %s", upload_id, exc.message)
        if self._idempotency_key is not None:
            keys = IdempotencyKeys(self.ctx.service, self.ctx.config.api.idempotency_ttl)
            await keys.forget(self.principal, self._idempotency_key, upload_id, self._fingerprint)
