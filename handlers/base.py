"""``BaseHandler``: common headers, auth, CORS, limits and error rendering.

Every handler gets its dependencies through ``initialize(ctx=AppContext)``.
``write_error`` is the one place that renders errors: a
:class:`tusd_py.core.errors.TusError` becomes its status, headers and
``{"error": {"code", "message"}}`` body (no body for HEAD); Tornado's own
HTTP errors are mapped to the same shape.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import tornado.httputil
import tornado.iostream
import tornado.web

from tusd_py.core import auth_errors, errors, protocol
from tusd_py.core.models import Principal
from tusd_py.ops.context import AppContext
from tusd_py.rufh import problems, version
from tusd_py.rufh.version import INTEROP_HEADER, Draft, detect
from tusd_py.throttle.base import RequestKind

log = logging.getLogger("tusd_py.app")

_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TORNADO_CODES = {
    400: "ERR_BAD_REQUEST",
    403: "ERR_FORBIDDEN",
    404: "ERR_NOT_FOUND",
    405: "ERR_METHOD_NOT_ALLOWED",
    411: "ERR_LENGTH_REQUIRED",
    413: "ERR_MAX_SIZE_EXCEEDED",
    431: "ERR_HEADERS_TOO_LARGE",
}
_REASONS = {460: "Checksum Mismatch", 507: "Insufficient Storage", 423: "Locked"}
#: The ``Server`` header (Tornado's own).
SERVER = f"TornadoServer/{tornado.version}"


class RequestIds:
    """New ``X-Request-ID`` values (for requests that bring none): 64 bits
    from a generator seeded once from the OS, so a request costs no system
    call. An id labels log lines and guards nothing. Make one per process
    (the server builds its application after forking workers)."""

    def __init__(self) -> None:
        self._random = random.Random()  # seeded from os.urandom

    def __call__(self) -> str:
        return f"{self._random.getrandbits(64):016x}"


def request_id(settings: Mapping[str, Any], headers: tornado.httputil.HTTPHeaders) -> str:
    """The request's id: its ``X-Request-ID`` when well-formed, else a new
    one from the application's ``request_ids`` (:func:`app_settings`)."""
    supplied = headers.get("X-Request-ID", "")
    if _REQUEST_ID_RE.fullmatch(supplied):
        return supplied
    new_id: RequestIds = settings["request_ids"]
    return new_id()


def client_ip(ctx: AppContext, request: tornado.httputil.HTTPServerRequest) -> str:
    """The client's address; proxy headers count only with ``trust_proxy``."""
    if ctx.config.server.trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()
        real = request.headers.get("X-Real-IP")
        if real:
            return real.strip()
    return str(request.remote_ip or "")


def http_dates(settings: Mapping[str, Any]) -> Callable[[float], str]:
    """:func:`tusd_py.core.protocol.http_date`, through the application's
    ``http_dates`` (:func:`app_settings`)."""
    dates: protocol.HttpDates = settings["http_dates"]
    return dates.format


def app_settings() -> dict[str, Any]:
    """The Tornado settings :class:`BaseHandler` reads, one set per application
    (:func:`handlers.app.make_app` adds them): ``http_dates`` (the ``Date`` and
    ``Upload-Expires`` strings) and ``request_ids``."""
    return {"http_dates": protocol.HttpDates(), "request_ids": RequestIds()}


@tornado.web.stream_request_body
class BaseHandler(tornado.web.RequestHandler):
    """Shared behaviour of every tusd-py route.

    Every route streams its request body: one that needs none (health,
    metrics, 404, 405, 431, ...) discards what arrives (:meth:`data_received`)
    instead of Tornado buffering it whole, and a refusal in ``prepare`` comes
    before the body is read (then drained, see :mod:`handlers.httpconn`).
    """

    ctx: AppContext
    #: Set by handlers for the access log.
    upload_id: str | None = None
    principal: Principal | None = None
    bytes_received: int = 0
    error_code: str | None = None
    #: Set by :meth:`detect_draft` for IETF draft requests (None: tus).
    draft: Draft | None = None
    #: ``provided-offset`` of a draft PATCH (for the mismatching-offset problem).
    provided_offset: int | None = None

    def initialize(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.request_id = request_id(self.settings, self.request.headers)
        self._extra_headers: dict[str, str] = {}
        # Tornado's constructor already set the context-free defaults (its
        # ``clear()``); only the headers needing ``ctx`` are added now.
        self._set_context_headers()

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        """A body sent to a route that takes none is read and discarded."""
        return None

    # --- headers -------------------------------------------------------------

    def compute_etag(self) -> str | None:
        """No automatic ETags: downloads set their own."""
        return None

    def clear(self) -> None:
        """Tornado's reset of the response, but with no ``Content-Type``
        default and the ``Date`` from :meth:`http_date` (formatted once a
        second, not per response)."""
        self._headers = tornado.httputil.HTTPHeaders({"Server": SERVER, "Date": self.http_date(time.time())})
        self.set_default_headers()
        self._write_buffer = []
        self._status_code = 200
        self._reason = "OK"

    def http_date(self, timestamp: float) -> str:
        """:func:`tusd_py.core.protocol.http_date`, through :func:`http_dates`."""
        return http_dates(self.settings)(timestamp)

    def set_default_headers(self) -> None:
        draft: Draft | None = getattr(self, "draft", None)
        if draft is None:
            self.set_header("Tus-Resumable", protocol.TUS_VERSION)
        elif draft.interop is not None:
            self.set_header(INTEROP_HEADER, str(draft.interop))
        self.set_header("X-Content-Type-Options", "nosniff")
        if getattr(self, "ctx", None) is not None:
            self._set_context_headers()

    def _set_context_headers(self) -> None:
        """The default headers that need ``ctx``: request id, sticky headers, CORS."""
        self.set_header("X-Request-ID", self.request_id)
        for name, value in getattr(self, "_extra_headers", {}).items():
            self.set_header(name, value)
        origin = self.request.headers.get("Origin")
        if origin and self._origin_allowed(origin):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header(
                "Access-Control-Expose-Headers",
                ", ".join(protocol.CORS_EXPOSE_HEADERS + version.CORS_EXPOSE_HEADERS),
            )
            self.add_header("Vary", "Origin")

    def add_sticky_header(self, name: str, value: str) -> None:
        """A header that survives ``clear()`` (kept on error responses too)."""
        self._extra_headers[name] = value
        self.set_header(name, value)

    def _origin_allowed(self, origin: str) -> bool:
        allowed = self.ctx.config.server.cors_origins
        return "*" in allowed or origin in allowed

    def is_preflight(self) -> bool:
        return (
            self.request.method == "OPTIONS"
            and "Origin" in self.request.headers
            and "Access-Control-Request-Method" in self.request.headers
        )

    def answer_preflight(self) -> None:
        """CORS preflight: 204 with allowed methods and headers (if the origin is allowed)."""
        origin = self.request.headers.get("Origin", "")
        if self._origin_allowed(origin):
            self.set_header("Access-Control-Allow-Methods", ", ".join(protocol.CORS_METHODS))
            self.set_header(
                "Access-Control-Allow-Headers",
                ", ".join(protocol.CORS_ALLOW_HEADERS + version.CORS_ALLOW_HEADERS),
            )
            self.set_header("Access-Control-Max-Age", "86400")
        self.set_status(204)
        self.finish()

    # --- request facts -----------------------------------------------------------

    def client_ip(self) -> str:
        """The client's address (:func:`client_ip`)."""
        return client_ip(self.ctx, self.request)

    def external_base(self) -> str:
        """``scheme://host`` of this server as the client sees it."""
        scheme = self.request.protocol
        host = self.request.host
        if self.ctx.config.server.trust_proxy:
            forwarded = self.request.headers.get("Forwarded")
            if forwarded:
                first = forwarded.split(",")[0]
                for part in first.split(";"):
                    key, _, value = part.strip().partition("=")
                    value = value.strip('"')
                    if key.lower() == "proto" and value in ("http", "https"):
                        scheme = value
                    elif key.lower() == "host" and value:
                        host = value
            else:
                proto = self.request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip()
                if proto in ("http", "https"):
                    scheme = proto
                fwd_host = self.request.headers.get("X-Forwarded-Host", "").split(",")[0].strip()
                if fwd_host:
                    host = fwd_host
        if (scheme == "http" and host.endswith(":80")) or (scheme == "https" and host.endswith(":443")):
            host = host.rsplit(":", 1)[0]
        return f"{scheme}://{host}"

    def upload_url(self, upload_id: str) -> str:
        """The absolute URL of an upload (the ``Location`` header)."""
        return f"{self.external_base()}{self.ctx.config.server.base_path}{upload_id}"

    # --- auth and limits ---------------------------------------------------------

    def authenticate(self, *, required: bool = True) -> Principal | None:
        """The caller; raises 401 when ``required`` and there is none."""
        principal = self.ctx.authenticator.authenticate(self.request.headers)
        if principal is None and required:
            raise auth_errors.Unauthenticated("this request needs an Authorization: Bearer token")
        self.principal = principal
        return principal

    async def admit(self, kind: RequestKind, *, required: bool = True) -> Principal | None:
        """Authenticate the caller (see :meth:`authenticate`), then count the
        request against the rate limits of ``kind``.

        A refused credential is first counted as an anonymous request against
        the per-IP request limit, so a flood of bad or missing tokens ends in
        429 like any other flood; the 401 follows while under that limit."""
        try:
            principal = self.authenticate(required=required)
        except auth_errors.Unauthenticated:
            await self.check_limits("request")
            raise
        await self.check_limits(kind)
        return principal

    async def check_limits(self, kind: RequestKind) -> None:
        """Count the request against rate limits (before any body is read)."""
        headers = await self.ctx.guard.check(kind, self.principal, self.client_ip())
        for name, value in headers.items():
            self.add_sticky_header(name, value)

    def detect_draft(self) -> Draft | None:
        """Recognise an IETF draft request (:func:`tusd_py.rufh.version.detect`);
        its responses then carry no ``Tus-Resumable`` and its errors are
        problem details. Raises 412 for an unsupported interop version."""
        draft = detect(self.request.method or "", self.request.headers)
        if draft is not None:
            self.draft = draft
            self.clear_header("Tus-Resumable")
            if draft.interop is not None:
                self.set_header(INTEROP_HEADER, str(draft.interop))
        return draft

    def require_tus_version(self) -> None:
        """412 unless ``Tus-Resumable`` names a version we speak."""
        version = self.request.headers.get("Tus-Resumable")
        if version not in protocol.SUPPORTED_VERSIONS:
            raise errors.UnsupportedVersion(
                "Tus-Resumable must be 1.0.0"
                + (f" (got {version[:20]!r})" if version else " (header missing)"),
                headers={"Tus-Version": ",".join(protocol.SUPPORTED_VERSIONS)},
            )

    # --- errors --------------------------------------------------------------------

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, errors.TusError):
            error = exc
        elif isinstance(exc, tornado.web.HTTPError):
            error = errors.TusError(exc.log_message or self._reason)
            error_status = exc.status_code
            self.set_status(error_status)
            self._render(
                error_status,
                _TORNADO_CODES.get(error_status, "ERR_HTTP"),
                exc.log_message or self._reason,
                {},
            )
            return
        else:
            error = errors.TusError()
            if status_code != 500:
                self._render(status_code, _TORNADO_CODES.get(status_code, "ERR_HTTP"), self._reason, {})
                return
        self._render(error.status, error.code, error.message, error.headers)

    def _render(self, status: int, code: str, message: str, headers: Mapping[str, str]) -> None:
        self.error_code = code
        if self.draft is not None and status == errors.ChecksumMismatch.status:
            status = 400  # 460 is tus's; a draft client gets a standard status (same code)
        self.set_status(status, _REASONS.get(status))
        if status == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        for name, value in headers.items():
            self.set_header(name, value)
        if self.request.method == "HEAD" or status == 304:
            self.finish()
            return
        if self.draft is not None:
            members = None
            offset = headers.get("Upload-Offset")
            if self.provided_offset is not None and offset is not None:
                members = {"expected-offset": int(offset), "provided-offset": self.provided_offset}
            self.set_header("Content-Type", problems.PROBLEM_CONTENT_TYPE)
            self.finish(problems.problem_body(status, code, message, members))
            return
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": {"code": code, "message": message}}))

    def fail(self, error: errors.TusError) -> None:
        """Answer ``error`` now (e.g. mid-body); a no-op once finished."""
        if self._finished:
            return
        if self._headers_written:
            self.close_connection()
            return
        self.clear()
        self._render(error.status, error.code, error.message, error.headers)

    def close_after_response(self) -> None:
        """Close the connection once the response is written instead of draining
        the unread rest of the body (see :mod:`handlers.httpconn`)."""
        skip = getattr(self.request.connection, "close_after_response", None)
        if skip is not None:
            skip()

    def allowed_methods(self) -> tuple[str, ...]:
        """The methods this route answers (the ``Allow`` header of a 405)."""
        base = tornado.web.RequestHandler
        return tuple(
            m
            for m in self.SUPPORTED_METHODS
            if getattr(type(self), m.lower(), None) is not getattr(base, m.lower(), None)
        )

    def close_connection(self) -> None:
        """Drop the client connection (stops reading a request body)."""
        connection = self.request.connection
        close = getattr(connection, "close", None)
        if close is not None:
            close()

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(value, tornado.iostream.StreamClosedError):
            return
        if isinstance(value, errors.TusError) and value.status < 500:
            return
        if isinstance(value, errors.TusError) and type(value) is not errors.TusError:
            log.warning(
                "%s %s: %s %s",
                self.request.method,
                self.request.path,
                value.code,
                value.message,
                extra={"request_id": self.request_id, "upload_id": self.upload_id},
            )
            return
        super().log_exception(typ, value, tb)

    def finish_json(self, status: int, body: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))


class NotFoundHandler(BaseHandler):
    """Unknown routes: a JSON 404."""

    def prepare(self) -> None:
        raise errors.NotFound(f"no route for {self.request.path[:200]}")


class HeadersTooLargeHandler(BaseHandler):
    """Requests whose header block exceeds ``server.max_header_size``: a JSON 431."""

    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "DELETE", "PATCH", "PUT", "OPTIONS")

    def prepare(self) -> None:
        limit = self.ctx.config.server.max_header_size
        raise errors.HeadersTooLarge(
            f"the request headers are about {request_head_size(self.request)} bytes; the limit is {limit}"
        )


def request_head_size(request: tornado.httputil.HTTPServerRequest) -> int:
    """Size in bytes of a request's start line and header block: as read,
    when the connection counted it (:class:`handlers.httpconn.DrainingConnection`),
    else approximated from the parsed request."""
    counted: int = getattr(request.connection, "head_size", 0)
    if counted:
        return counted
    size = len(request.method or "") + len(request.uri or "") + len(request.version) + 4
    for name, value in request.headers.get_all():
        size += len(name) + len(value) + 4
    return size + 2
