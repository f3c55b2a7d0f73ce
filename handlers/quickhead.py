"""HEAD of an upload answered below Tornado's ``RequestHandler``.

Clients poll HEAD for the offset to resume from, and on loopback Tornado's
per-request machinery (a handler object and its header reset, a coroutine
and a Task, flush and finish) is about a third of a HEAD's round trip:
an ``HTTPMessageDelegate`` answering HEAD from a file's size served 1.43× the
HEADs per second of the same answer from a ``RequestHandler``
(tests/bench/RESULTS.md, "HEAD below the RequestHandler").

:class:`QuickHead` answers the common case with the steps
:class:`handlers.resource.UploadHandler` takes, writing the response straight
to the connection: a tus HEAD (``Tus-Resumable: 1.0.0``, so never the IETF
draft; no body, no CORS ``Origin``) of an upload the caller may see. The
caller is authenticated, the record read (``UploadService.get``, with its
repairs), the request counted against the rate limits, and the answer built
from the same header functions; the access line and request metrics are
Tornado's ``log_function``, called with this delegate as the "handler".

Everything else — a refused credential, an unknown or expired upload, a rate
limit reached, a failing backend — is handed to the ``UploadHandler`` the
router chose, untouched, so every error is rendered in one place. Handing over
happens before the request was counted, except after a refusal by the rate
limiter itself (fixed windows: a second hit on a window already over its limit
changes neither the answer nor ``RateLimit-Remaining``). The only other
difference: the record is read before the request is counted, so a caller
already over its limit still costs a record read per HEAD.

``quick_head=False`` in the application settings turns this off.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import tornado.httputil
import tornado.web

from handlers.base import SERVER, client_ip, http_dates, request_id
from handlers.tus_headers import upload_headers
from tusd_py.core import auth_errors, protocol
from tusd_py.core.models import Principal
from tusd_py.ops.context import AppContext

if TYPE_CHECKING:
    from collections.abc import Awaitable

_OK = tornado.httputil.ResponseStartLine("", 200, "OK")


def qualifies(request: tornado.httputil.HTTPServerRequest) -> bool:
    """Whether ``request`` is the common HEAD :class:`QuickHead` answers
    (the route is checked by the caller). A request with ``Tus-Resumable``
    is tus, never the IETF draft (:func:`tusd_py.rufh.version.detect`)."""
    headers = request.headers
    return (
        request.method == "HEAD"
        and headers.get("Tus-Resumable") == protocol.TUS_VERSION
        and "Origin" not in headers
        and "Content-Length" not in headers
        and "Transfer-Encoding" not in headers
    )


class QuickHead(tornado.httputil.HTTPMessageDelegate):
    """Answers one qualifying HEAD (see the module docstring), or hands it to
    ``inner``, the router's delegate for the ``UploadHandler``.

    Offers what the access log and request metrics read from a handler:
    ``request``, ``get_status()``, ``request_id``, ``principal``,
    ``upload_id``, ``bytes_received`` and ``error_code``."""

    bytes_received = 0
    error_code: str | None = None

    def __init__(
        self,
        application: tornado.web.Application,
        request: tornado.httputil.HTTPServerRequest,
        inner: tornado.web._HandlerDelegate,
        ctx: AppContext,
        upload_id: str,
    ) -> None:
        self.application = application
        self.request = request
        self.upload_id = upload_id
        self.principal: Principal | None = None
        self.request_id = ""
        self._inner = inner
        self._ctx = ctx
        self._handed_over = False

    def get_status(self) -> int:
        return 200

    # --- HTTPMessageDelegate ---------------------------------------------------------
    #
    # The connection awaits what ``headers_received`` returns: the answer runs
    # in the connection's own task (no Task per HEAD). The response head is
    # written there; ``finish`` (called once the request is read: a HEAD
    # without a body is read with its head) ends the response, as Tornado
    # keeps a connection alive only for a response finished after its request.

    def headers_received(
        self,
        start_line: tornado.httputil.RequestStartLine | tornado.httputil.ResponseStartLine,
        headers: tornado.httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, tornado.httputil.RequestStartLine)
        return self._answer(start_line)

    def finish(self) -> None:
        if self._handed_over:
            self._inner.finish()
            return
        connection = self.request.connection
        assert connection is not None
        connection.finish()
        self.application.log_request(self)  # type: ignore[arg-type]

    def on_connection_close(self) -> None:
        if self._handed_over:
            self._inner.on_connection_close()

    # --- the answer ----------------------------------------------------------------

    async def _answer(self, start_line: tornado.httputil.RequestStartLine) -> None:
        ctx = self._ctx
        headers = self.request.headers
        try:
            principal = ctx.authenticator.authenticate(headers)
            if principal is None:
                raise auth_errors.Unauthenticated("no credential")
            info = await ctx.service.get(principal, self.upload_id)
            self.principal = principal
            limit_headers = await ctx.guard.check("request", principal, client_ip(ctx, self.request))
        except Exception:  # refused, unknown, gone, a backend failing: the
            # handler answers (and reports) it from scratch
            self._handed_over = True
            prepared = self._inner.headers_received(start_line, headers)
            if prepared is not None:
                await prepared
            return
        settings = self.application.settings
        http_date = http_dates(settings)
        self.request_id = request_id(settings, headers)
        response = tornado.httputil.HTTPHeaders()
        for name, value in (
            ("Server", SERVER),
            ("Date", http_date(time.time())),
            ("Tus-Resumable", protocol.TUS_VERSION),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Request-ID", self.request_id),
            *limit_headers.items(),
            *upload_headers(info, http_date),
            ("Content-Length", "0"),
        ):
            response[name] = value
        connection = self.request.connection
        assert connection is not None
        connection.write_headers(_OK, response)
