"""``StatusHandler`` at ``/index-status/{file_id}``: live upload status (SPEC §6).

``Accept: text/event-stream`` turns the answer into Server-Sent Events: an
``event: status`` with the status document at once, then again whenever the
upload changes (live events of this and, with Redis, other instances; the
state store is re-read at least every :data:`REFRESH` seconds), until the
upload is no longer ``uploading`` (the last event carries the final state; a
terminated upload ends with ``event: terminated``), the client leaves, or
:data:`MAX_STREAM` seconds pass (``EventSource`` reconnects by itself).
Comment lines keep idle proxies from closing the stream.
"""

from __future__ import annotations

import json
import time
from typing import Any

import tornado.iostream

from handlers.base import BaseHandler
from tusd_py.core import errors
from tusd_py.core.models import UploadInfo
from tusd_py.events.live.hub import Subscription
from tusd_py.rest.status import document_with_jobs, load_status, status_document

#: Seconds between two reads of the state store while no event arrives.
REFRESH = 1.0
#: Seconds between keep-alive comments.
KEEPALIVE = 15.0
#: Longest single stream (seconds).
MAX_STREAM = 3600.0


def wants_event_stream(accept: str) -> bool:
    """Whether an ``Accept`` header asks for ``text/event-stream``."""
    return any(part.split(";")[0].strip().lower() == "text/event-stream" for part in accept.split(","))


class StatusHandler(BaseHandler):
    """GET: the status document (or its SSE stream); other users' uploads answer 404."""

    SUPPORTED_METHODS = ("GET", "OPTIONS")
    _left = False

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        await self.admit("request")

    def options(self, file_id: str) -> None:
        if self.is_preflight():
            self.answer_preflight()
            return
        self.set_header("Allow", "GET, OPTIONS")
        self.set_status(204)

    async def get(self, file_id: str) -> None:
        assert self.principal is not None
        self.upload_id = file_id
        info = await load_status(self.ctx.service, self.principal, file_id)
        self.set_header("Cache-Control", "no-store")
        if wants_event_stream(self.request.headers.get("Accept", "")):
            await self._stream(info)
            return
        self.finish_json(200, await document_with_jobs(self.ctx, info))

    def _document(self, info: UploadInfo) -> dict[str, Any]:
        return status_document(info, self.ctx.service.clock(), self.ctx.config.server.base_path)

    def on_connection_close(self) -> None:
        self._left = True
        sub = getattr(self, "_subscription", None)
        if sub is not None:
            sub.close()

    async def _stream(self, info: UploadInfo) -> None:
        assert self.principal is not None
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("X-Accel-Buffering", "no")
        hub = self.ctx.live
        self._subscription = sub = hub.subscribe(None, upload_id=info.id)
        try:
            await self._send_events(info, sub)
        finally:
            hub.unsubscribe(sub)
        if not self._left:
            self.finish()

    async def _send_events(self, info: UploadInfo, sub: Subscription) -> None:
        assert self.principal is not None
        started = last_write = time.monotonic()
        document = self._document(info)
        if not await self._event("status", document):
            return
        while document["state"] == "uploading" and not self._left:
            now = time.monotonic()
            if now - started > MAX_STREAM:
                return
            event = await sub.next(timeout=REFRESH)
            if self._left:
                return
            if event is not None and event.get("type") == "upload.terminated":
                await self._event("terminated", event)
                return
            try:
                info = await load_status(self.ctx.service, self.principal, info.id)
            except errors.UploadNotFound:
                await self._event("terminated", {"upload_id": info.id, "state": "terminated"})
                return
            fresh = self._document(info)
            if fresh != document:
                document = fresh
                if not await self._event("status", document):
                    return
                last_write = time.monotonic()
            elif time.monotonic() - last_write > KEEPALIVE:
                if not await self._write(": keep-alive\n\n"):
                    return
                last_write = time.monotonic()

    async def _event(self, name: str, data: dict[str, Any]) -> bool:
        return await self._write(f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n")

    async def _write(self, text: str) -> bool:
        """Send ``text`` now; False once the client has gone."""
        try:
            self.write(text)
            await self.flush()
        except tornado.iostream.StreamClosedError:
            self._left = True
        return not self._left
