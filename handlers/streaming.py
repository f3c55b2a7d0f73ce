"""``StreamingHandler``: request bodies appended to an upload as they arrive.

The body is never buffered: Tornado hands each received chunk (at most the
server's read size) to ``data_received``, which awaits the write so TCP
back-pressure holds. However the request ends — complete body, client gone,
idle for ``network_timeout``, interrupted by a newer request for the same
upload (lock release request), shutdown — the bytes stored so far are
published as the upload's offset exactly once and the lock is released.

A large body on plain HTTP is spliced from the socket into the upload file
instead (:mod:`tusd_py.zerocopy`) after its first bytes were copied; the
guarantees above hold for it too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import tornado.web

from handlers.base import BaseHandler
from handlers.httpconn import DrainingConnection
from handlers.zerocopy import MIN_BODY, SplicedBody, step_limit
from tusd_py.core import errors
from tusd_py.core.append import AppendRequest, AppendSession
from tusd_py.core.models import Principal, UploadInfo
from tusd_py.ops.logs import UNANSWERED_STATUS
from tusd_py.throttle.base import StreamSlot

log = logging.getLogger("tusd_py.app")

#: The answer to a body cut for each reason (see :meth:`StreamingHandler.cut`).
_CUT_ERRORS: dict[str, Callable[[], errors.TusError]] = {
    "ERR_READ_TIMEOUT": errors.ReadTimeout,
    "ERR_UPLOAD_INTERRUPTED": errors.UploadInterrupted,
    "ERR_SERVER_SHUTDOWN": lambda: errors.ServerShutdown(retry_after=5),
    "ERR_STATE_STORE": lambda: errors.StateStoreError(
        "the lock service became unreachable; the bytes received were kept, resume with HEAD",
        retry_after=2,
    ),
}


@tornado.web.stream_request_body
class StreamingHandler(BaseHandler):
    """Base of handlers whose requests may carry an upload body."""

    #: True if the request body is the upload's bytes as they are (tus PATCH
    #: and creation-with-upload), so it may be spliced into the file; False for
    #: bodies the handler transforms (multipart).
    raw_body_appends: bool = False
    session: AppendSession | None = None
    _slot: StreamSlot | None = None
    _idle_handle: asyncio.TimerHandle | None = None
    _last_activity: float = 0.0
    _stream_open: bool = False
    _ended: asyncio.Task[Any] | None = None
    _cut_reason: str | None = None
    _stream_token: int = 0
    _committing: bool = False
    _connection_lost: bool = False
    _splice: SplicedBody | None = None

    def request_has_body(self) -> bool:
        """True if the request declares a non-empty body."""
        length = self.request.headers.get("Content-Length")
        if length is not None:
            return length.strip() not in ("", "0")
        return "chunked" in self.request.headers.get("Transfer-Encoding", "").lower()

    def content_length(self) -> int | None:
        length = self.request.headers.get("Content-Length")
        return int(length) if length is not None and length.strip().isdigit() else None

    async def start_stream(
        self, principal: Principal, upload_id: str, request: AppendRequest
    ) -> AppendSession:
        """Take a stream slot (unless reserved), the upload's lock, validate, and arm the idle timer."""
        await self.reserve_stream(principal)
        self.session = await self.ctx.service.begin_append(
            principal, upload_id, request, self._on_release_requested
        )
        if not self._stream_open:
            # Cut (shutdown) or the client left while we waited for the lock:
            # nothing will arrive; give the lock back.
            await self.session.abort()
            return self.session
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._idle_handle = loop.call_later(self.ctx.config.server.network_timeout, self._check_idle)
        self._offer_splice(self.session, request)
        return self.session

    def _offer_splice(self, session: AppendSession, request: AppendRequest) -> None:
        """Let the connection splice this body when zero-copy applies (see
        :mod:`tusd_py.zerocopy` for when it does not)."""
        connection = self.request.connection
        length = self.content_length()
        server = self.ctx.config.server
        if (
            not self.raw_body_appends
            or not server.zero_copy
            or not isinstance(connection, DrainingConnection)
            or self.request.protocol != "http"
            or length is None
            or length < MIN_BODY
            or "Transfer-Encoding" in self.request.headers
            or request.checksum is not None
            or self.draft is not None
        ):
            return
        self._splice = SplicedBody(
            session,
            on_moved=self._spliced,
            on_error=self._store_failed,
            max_step=step_limit(server.progress_interval, server.release_idle),
        )
        connection.offer_splice(self._splice)

    def _spliced(self, n: int) -> None:
        self._last_activity = asyncio.get_running_loop().time()
        self.ctx.metrics.bytes_received += n

    async def reserve_stream(self, principal: Principal) -> None:
        """Take this request's stream slot now (idempotent); it is released
        when the request ends, however it ends. Raises 429/503 (guard) or 503
        while draining."""
        if self._stream_open:
            return
        lifecycle = self.ctx.lifecycle
        if lifecycle.draining:
            raise errors.ServerShutdown(retry_after=5)
        self._slot = await self.ctx.guard.open_stream(principal, self.client_ip())
        self._stream_open = True
        self._stream_token = lifecycle.stream_started(self.cut)

    async def data_received(self, chunk: bytes) -> None:
        session = self.session
        if session is None or self._finished or session.closed:
            return
        self._last_activity = asyncio.get_running_loop().time()
        self.ctx.metrics.bytes_received += len(chunk)
        try:
            await session.write(chunk)
        except errors.TusError as exc:
            self._store_failed(exc)

    def _store_failed(self, exc: errors.TusError) -> None:
        """Storing the body failed: answer ``exc`` (the bytes stored are kept)."""
        if self.session is not None:
            self.bytes_received = self.session.received
        self.fail(exc)
        self._end_stream()

    async def finish_stream(self) -> UploadInfo:
        """The body is complete: commit it. Raises what stopped the stream."""
        session = self.session
        assert session is not None
        self._committing = True
        try:
            info = await session.commit()
        finally:
            self.bytes_received = session.received
            self._end_stream()
        return info

    # --- ending ------------------------------------------------------------------

    def cut(self, reason: str) -> None:
        """Stop reading this request's body; the bytes received are kept.

        ``reason`` is an error code (``ERR_READ_TIMEOUT``,
        ``ERR_UPLOAD_INTERRUPTED``, ``ERR_SERVER_SHUTDOWN``). A client still
        listening gets that error as the answer (as tusd does: 500 for the
        timeout so clients retry, 400 for an interruption, 503 for shutdown);
        the connection is then closed, the unread body is not drained. A body
        already complete is left to commit, which releases the lock itself.
        """
        session = self.session
        if (
            self._cut_reason
            or self._committing
            or not self._stream_open
            or (session is not None and session.closed)
        ):
            return
        if self._splice is not None and self._splice.stop(lambda: self.cut(reason)):
            return  # cut once no splice step runs (the socket is then ours again)
        self._cut_reason = reason
        log.info(
            "upload %s cut: %s",
            self.upload_id,
            reason,
            extra={"request_id": self.request_id, "upload_id": self.upload_id},
        )
        if session is not None:
            self.bytes_received = session.received
        if self._finished or self._headers_written:
            self.error_code = reason
            self.close_connection()
        else:
            self.close_after_response()  # a cut body is not drained
            self.fail(_CUT_ERRORS.get(reason, errors.UploadInterrupted)())
        self._end_stream()

    def _on_release_requested(self) -> None:
        length = self.content_length()
        received = self.session.received if self.session is not None else 0
        if self._committing or (length is not None and received >= length):
            return  # the whole body is in: the commit answers and releases the lock at once
        if self.session is not None and self.session.lock_backend_failing():
            self.cut("ERR_STATE_STORE")
        else:
            self.cut("ERR_UPLOAD_INTERRUPTED")

    def _check_idle(self) -> None:
        self._idle_handle = None
        session = self.session
        if session is None or session.closed:
            return
        loop = asyncio.get_running_loop()
        idle = loop.time() - self._last_activity
        timeout = self.ctx.config.server.network_timeout
        if idle >= timeout:
            self.cut("ERR_READ_TIMEOUT")
        else:
            self._idle_handle = loop.call_later(timeout - idle, self._check_idle)

    def _end_stream(self) -> None:
        """Idempotently abort the session (if still open) and free the slot."""
        if self._idle_handle is not None:
            self._idle_handle.cancel()
            self._idle_handle = None
        if not self._stream_open:
            return
        self._stream_open = False
        self._ended = self.ctx.lifecycle.spawn(self._cleanup())

    async def _cleanup(self) -> None:
        try:
            if self.session is not None and not self.session.closed:
                info = await self.session.abort()
                self.bytes_received = self.session.received
                self.ctx.service.events.emit("upload.interrupted", info, self._cut_reason)
        finally:
            if self._slot is not None:
                slot, self._slot = self._slot, None
                await slot.release()
            self.ctx.lifecycle.stream_ended(self._stream_token)
            self._log_unanswered()

    def _log_unanswered(self) -> None:
        """Tornado logs only finished requests: log one whose body was cut off
        (status 499, ``code`` = why) once its bytes are saved."""
        if self._finished or not (self._connection_lost or self._cut_reason):
            return
        self.error_code = self._cut_reason or errors.ConnectionReset.code
        self.set_status(UNANSWERED_STATUS)
        self.application.log_request(self)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if not self._finished:
            self._connection_lost = True
        self._end_stream()

    def on_finish(self) -> None:
        self._end_stream()
