"""``EventsHandler`` at ``/events``: the caller's live upload and job events (WebSocket).

Authentication: an ``Authorization: Bearer`` header on the handshake (an
invalid one is refused with 401 before the upgrade), or — browsers cannot set
headers on a WebSocket — a first message ``{"token": "..."}`` within
:data:`AUTH_TIMEOUT` seconds. Without one the socket is closed with code
:data:`CLOSE_UNAUTHENTICATED` (4401) and a reason saying what to send; a bad
token closes with 4401 and the verifier's message; a first message that is not
``{"token": str}`` closes with :data:`CLOSE_BAD_MESSAGE` (4400). When the
server shuts down, sockets close with 1001.

Once authenticated the server sends ``{"type": "ready", "user", "admin"}`` and
from then on each event as one JSON text message: ``{"type":
"upload.progress" | "upload.created" | "upload.finished" | "upload.terminated",
"upload_id", "offset", "length", "state", "at"}`` (job events later carry
their own fields). A user sees only their own uploads; admins see all.
Progress is at most every 250 ms per upload; a reader too slow for the stream
loses old progress events (see :class:`tusd_py.events.live.hub.Subscription`).

Cross-origin handshakes follow ``server.cors_origins``: a page of this server's
own origin is always allowed, another origin only when it is listed (or ``*``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import tornado.web
import tornado.websocket

from tusd_py.core import auth_errors, errors
from tusd_py.core.models import Principal
from tusd_py.events.live.hub import Subscription
from tusd_py.ops.context import AppContext

log = logging.getLogger("tusd_py.app")

#: Seconds a socket without a header token has to send ``{"token": ...}``.
AUTH_TIMEOUT = 5.0
#: Largest message accepted from a client (only the token message is read).
MAX_MESSAGE = 16 * 1024
#: Seconds between server pings (dead peers are noticed and dropped).
PING_INTERVAL = 20.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_BAD_MESSAGE = 4400
CLOSE_GOING_AWAY = 1001


class EventsHandler(tornado.websocket.WebSocketHandler):
    """One subscriber socket (see module docstring)."""

    SUPPORTED_METHODS = ("GET",)

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.principal: Principal | None = None
        self.subscription: Subscription | None = None
        self._auth_timer: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task[None] | None = None
        #: For the access log.
        self.error_code: str | None = None

    # --- handshake -----------------------------------------------------------

    @property
    def ping_interval(self) -> float | None:
        return PING_INTERVAL

    @property
    def max_message_size(self) -> int:
        return MAX_MESSAGE

    def check_origin(self, origin: str) -> bool:
        allowed = self.ctx.config.server.cors_origins
        if "*" in allowed or origin in allowed:
            return True
        return urlsplit(origin).netloc.lower() == self.request.host.lower()

    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            if self.request.headers.get("Upgrade", "").lower() != "websocket":
                raise errors.ProtocolError(
                    "/events is a WebSocket: send Connection: Upgrade and Upgrade: websocket "
                    "(or use Accept: text/event-stream on /index-status/{id})"
                )
            origin = self.request.headers.get("Origin")
            if origin is not None and not self.check_origin(origin):
                raise auth_errors.Forbidden(f"origin {origin[:100]} is not in server.cors_origins")
            self.principal = self.ctx.authenticator.authenticate(self.request.headers)
            await self.ctx.guard.check("request", self.principal, str(self.request.remote_ip or ""))
        except errors.TusError as exc:
            self._refuse(exc)
            return
        await super().get(*args, **kwargs)

    def _refuse(self, exc: errors.TusError) -> None:
        self.error_code = exc.code
        self.set_status(exc.status)
        for name, value in exc.headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(exc.to_dict()))

    # --- socket --------------------------------------------------------------

    def open(self, *args: str, **kwargs: str) -> None:
        if self.principal is not None:
            self._start(self.principal)
            return
        loop = asyncio.get_running_loop()
        self._auth_timer = loop.call_later(AUTH_TIMEOUT, self._auth_timeout)

    def _auth_timeout(self) -> None:
        self._auth_timer = None
        if self.principal is None:
            self.close(
                CLOSE_UNAUTHENTICATED,
                f'no token: send {{"token": "..."}} within {AUTH_TIMEOUT:g} s or an Authorization header',
            )

    def on_message(self, message: str | bytes) -> None:
        if self.principal is not None:
            return  # nothing else is read from clients
        token = None
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            body = json.loads(message)
            if isinstance(body, dict) and isinstance(body.get("token"), str):
                token = body["token"]
        if token is None:
            self.close(CLOSE_BAD_MESSAGE, 'the first message must be {"token": "<bearer token>"}')
            return
        try:
            principal = self.ctx.authenticator.authenticate({"Authorization": f"Bearer {token}"})
        except errors.TusError as exc:
            self.close(CLOSE_UNAUTHENTICATED, exc.message[:100])
            return
        if principal is None:
            self.close(CLOSE_UNAUTHENTICATED, "empty token")
            return
        self._start(principal)

    def _start(self, principal: Principal) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        self.principal = principal
        user = None if principal.is_admin else principal.user
        self.subscription = self.ctx.live.subscribe(user)
        self._pump = asyncio.create_task(self._forward(self.subscription))
        self.write_message({"type": "ready", "user": principal.user, "admin": principal.is_admin})

    async def _forward(self, sub: Subscription) -> None:
        """Write events in order; waiting for each write is the backpressure
        that lets the bounded queue drop old progress for a slow reader."""
        while True:
            event = await sub.next()
            if event is None:  # unsubscribed: the socket closed, or the hub (server) is closing
                self.close(CLOSE_GOING_AWAY, "server shutting down")
                return
            try:
                await self.write_message(json.dumps(event, separators=(",", ":")))
            except tornado.websocket.WebSocketClosedError:
                return

    def on_close(self) -> None:
        if self._auth_timer is not None:
            self._auth_timer.cancel()
            self._auth_timer = None
        if self.subscription is not None:
            self.ctx.live.unsubscribe(self.subscription)
        if self._pump is not None:
            self._pump.cancel()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": {"code": "ERR_BAD_REQUEST", "message": self._reason}}))
