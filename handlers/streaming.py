"""``StreamingHandler``: request bodies appended to an upload as they arrive.

The body is never buffered: Tornado hands each received chunk (at most the
server's read size) to ``data_received``, which awaits the write so TCP
back-pressure holds. However the request ends — complete body, client gone,
idle for ``network_timeout``, interrupted by a newer request for the same
upload (lock release request), shutdown — the bytes stored so far are
published as the upload's offset exactly once and the lock is released.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import tornado.web

from handlers.base import BaseHandler
from tusd_py import errors
from tusd_py.guard import StreamSlot
from tusd_py.models import Principal, UploadInfo
from tusd_py.service import AppendRequest, AppendSession

log = logging.getLogger("tusd_py.app")


@tornado.web.stream_request_body
class StreamingHandler(BaseHandler):
    """Base of handlers whose requests may carry an upload body."""

    session: AppendSession | None = None
    _slot: StreamSlot | None = None
    _idle_handle: asyncio.TimerHandle | None = None
    _last_activity: float = 0.0
    _stream_open: bool = False
    _ended: asyncio.Task[Any] | None = None
    _cut_reason: str | None = None
    _stream_token: int = 0
    _body_complete: bool = False

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
        """Take a stream slot and the upload's lock, validate, and arm the idle timer."""
        lifecycle = self.ctx.lifecycle
        if lifecycle.draining:
            raise errors.ServerShutdown(retry_after=5)
        self._slot = await self.ctx.guard.open_stream(principal, self.client_ip())
        self._stream_open = True
        self._stream_token = lifecycle.stream_started(self.cut)
        self.session = await self.ctx.service.begin_append(
            principal, upload_id, request, self._on_release_requested
        )
        loop = asyncio.get_running_loop()
        self._last_activity = loop.time()
        self._idle_handle = loop.call_later(self.ctx.config.server.network_timeout, self._check_idle)
        return self.session

    async def data_received(self, chunk: bytes) -> None:
        session = self.session
        if session is None or self._finished or session.closed:
            return
        self._last_activity = asyncio.get_running_loop().time()
        try:
            await session.write(chunk)
        except errors.TusError as exc:
            self.bytes_received = session.received
            self.fail(exc)
            self._end_stream()

    async def finish_stream(self) -> UploadInfo:
        """The body is complete: commit it. Raises what stopped the stream."""
        session = self.session
        assert session is not None
        self._body_complete = True
        try:
            info = await session.commit()
        finally:
            self.bytes_received = session.received
            self._end_stream()
        return info

    # --- ending ------------------------------------------------------------------

    def cut(self, reason: str) -> None:
        """Stop reading this request: close the connection, keep the bytes."""
        if self.session is None or self.session.closed or self._cut_reason:
            return
        self._cut_reason = reason
        self.error_code = reason
        log.info(
            "upload %s cut: %s",
            self.session.info.id,
            reason,
            extra={"request_id": self.request_id, "upload_id": self.session.info.id},
        )
        self.close_connection()
        self._end_stream()

    def _on_release_requested(self) -> None:
        length = self.content_length()
        received = self.session.received if self.session is not None else 0
        if self._body_complete or (length is not None and received >= length):
            return  # the whole body is in: the commit answers and releases the lock at once
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

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._end_stream()

    def on_finish(self) -> None:
        self._end_stream()
