"""The HTTP/1.1 server: Tornado's, plus a bounded drain of refused bodies.

Tornado closes the connection as soon as the response to a request whose
body it has not read is written. Most clients (Python ``http.client``,
``requests`` in part, tuspy) send the whole body before they read the
response, so that close turns the refusal into a connection reset: the unread
bytes make the kernel send RST, which destroys the response in the client's
receive buffer.

:class:`TusHTTPServer` keeps reading instead. Once a response has been
finished while the request body is still arriving, the rest of the body is
read and discarded in ``read_size`` pieces (nothing is buffered, the IOLoop
never waits) as long as

* at most ``drain_limit`` bytes are still to come (``server.refusal_drain``;
  a ``Content-Length`` beyond it, or a chunked body that exceeds it, ends the
  drain at once or once the bound is reached), and
* the client keeps sending (``idle_timeout`` seconds without a byte end it).

A drained body leaves the connection in step with the client's framing, so
it is kept alive unless the request said ``Connection: close``. Ending a
drain closes the connection, after the response is written (best effort).

A request with ``Expect: 100-continue`` that is answered before its body was
asked for gets no ``100 Continue``: its client sends no body, so there is
nothing to drain and the connection is closed after the answer (RFC 9110
§10.1.1). A handler may also call :meth:`DrainingConnection.close_after_response`
to skip the drain (e.g. a body cut on shutdown or read timeout).

A handler may offer the rest of a ``Content-Length`` body for splicing
(:meth:`DrainingConnection.offer_splice`, see :mod:`tusd_py.zerocopy`): the
connection copies the head and Tornado's buffered bytes, takes the socket off
the IOLoop while the body is spliced, and gives whatever is left back to
Tornado's reading; the next request re-registers the socket.

Request heads are read :data:`HEAD_READ_SIZE` bytes per socket read, bodies
``chunk_size`` (``server.read_size``) bytes per read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import tornado.httpserver
import tornado.httputil
import tornado.iostream
from tornado.http1connection import HTTP1Connection, HTTP1ConnectionParameters, HTTP1ServerConnection
from tornado.log import gen_log

if TYPE_CHECKING:
    from handlers.zerocopy import SplicedBody

#: Tornado reads at most this many header bytes before dropping the connection
#: unanswered; header blocks between ``server.max_header_size`` and this get a
#: JSON 431 from :class:`handlers.app.TusApplication`. A fixed bound (a header
#: block is buffered whole to be parsed), not a setting.
HEADER_READ_CAP = 2 << 20
#: How much one socket read takes while a request head is awaited (Tornado's
#: own default). Bodies are read ``chunk_size`` at a time (``server.read_size``,
#: 1 MiB by default), but a read that size for every head would allocate and
#: zero a buffer that large per request, and pull up to that much of a body
#: in with its head (copied before the rest can be spliced).
HEAD_READ_SIZE = 64 << 10


class DrainingConnection(HTTP1Connection):
    """A server-side :class:`HTTP1Connection` that drains a refused body (see module doc)."""

    def __init__(
        self,
        stream: tornado.iostream.IOStream,
        params: HTTP1ConnectionParameters,
        context: object,
        *,
        drain_limit: int,
        idle_timeout: float,
        body_read_size: int,
        splice_min: int = 0,
    ) -> None:
        super().__init__(stream, False, params, context)
        self._body_read_size = body_read_size
        self._splice_min = splice_min
        self._drain_limit = drain_limit
        self._idle_timeout = idle_timeout
        self._body_started = False
        self._body_seen = 0
        self._draining = False
        self._drained = 0
        self._no_drain = False
        self._close_after_drain = False
        self._response_sent = False
        self._last_read = 0.0
        self._drain_timer: object | None = None  # an IOLoop timeout handle
        #: Bytes of the current request's start line and header block.
        self.head_size = 0
        self._splice: SplicedBody | None = None

    # --- the handler's side ----------------------------------------------------

    def close_after_response(self) -> None:
        """Do not drain this request's body: close once the response is written."""
        self._no_drain = True

    def offer_splice(self, body: SplicedBody) -> None:
        """Let this request's fixed-length body be spliced (see module doc)."""
        self._splice = body

    def _parse_headers(self, data: bytes) -> tuple[str, tornado.httputil.HTTPHeaders]:
        start_line, headers = super()._parse_headers(data)
        self.head_size = len(data)
        # Tornado keeps a finished read_until's max_bytes as the target of
        # later reads made with none pending: the header cap (2 MiB) of body
        # bytes would be read ahead while the handler prepares or answers.
        self.stream._read_max_bytes = None
        if self._splice_min > 0 and _large_body(self.stream, headers, self._splice_min):
            # The body may be spliced: keep the idle IOStream from reading it
            # into its buffer while the handler prepares (lock, state read).
            _unwatch(self.stream)
        return start_line, headers

    def finish(self) -> None:
        if not self._read_finished and self._may_drain():
            self._draining = True
            # The request's own keep-alive wish (super().finish() overwrites it).
            self._close_after_drain = self._disconnect_on_finish
            self._last_read = self.stream.io_loop.time()
        super().finish()

    def _may_drain(self) -> bool:
        headers = self._request_headers
        if self._no_drain or self._drain_limit <= 0 or headers is None:
            return False
        if not self._body_started and headers.get("Expect", "").lower() == "100-continue":
            return False  # no 100 Continue will be sent: the client sends no body
        length = headers.get("Content-Length")
        if length is not None:
            try:
                remaining = int(length) - self._body_seen
            except ValueError:
                return False
            return remaining <= self._drain_limit
        return True  # chunked (bounded while reading) or no body at all

    # --- Tornado's hooks ---------------------------------------------------------

    def _finish_request(self, future: asyncio.Future[None] | None) -> None:
        self._response_sent = True
        if self._draining:
            if self._read_finished:
                self._disconnect_on_finish = self._close_after_drain
            else:
                # Keep reading; the end of the body (or of the drain) decides.
                self._disconnect_on_finish = False
                self._arm_timer()
        super()._finish_request(future)

    def _read_body(
        self,
        code: int,
        headers: tornado.httputil.HTTPHeaders,
        delegate: tornado.httputil.HTTPMessageDelegate,
    ) -> Awaitable[None] | None:
        self._body_started = True
        if self._splice is None:
            self._reading_bodies()
        body = super()._read_body(code, headers, delegate)
        if body is None:  # no body at all: nothing to drain
            self._reading_heads()
            self._settle()
            return None
        return self._read_then_settle(body)

    async def _read_then_settle(self, body: Awaitable[None]) -> None:
        try:
            await body
        finally:
            self._cancel_timer()
            self._reading_heads()
        self._settle()

    def _settle(self) -> None:
        """The whole body is read: end the drain, keep the connection alive
        unless the request asked to close it."""
        self._cancel_timer()
        if not self._draining:
            return
        self._draining = False
        if not self._response_sent:
            self._disconnect_on_finish = self._close_after_drain
        elif self._close_after_drain:
            self.close()

    async def _read_fixed_body(
        self, content_length: int, delegate: tornado.httputil.HTTPMessageDelegate
    ) -> None:
        body = self._splice
        stream = self.stream
        if body is None or content_length < body.min_body or not _spliceable(stream):
            self._reading_bodies()
            await super()._read_fixed_body(content_length, delegate)
            return
        remaining = content_length
        copied = 0
        # 1. the head through data_received, Tornado reading as always, but
        # the socket off the IOLoop between reads (an idle IOStream keeps
        # reading into its buffer, up to max_buffer_size) ...
        while remaining > 0 and copied < body.head_bytes:
            data = await stream.read_bytes(min(self.params.chunk_size, remaining), partial=True)
            remaining -= len(data)
            copied += len(data)
            if not stream.writing():
                _unwatch(stream)
            await self._deliver_body(delegate, data)
        # ... then what Tornado already holds, served from its buffer (no
        # socket read); checked again after every await.
        while remaining > 0 and not self._write_finished and not stream.writing():
            _unwatch(stream)
            if stream._read_buffer_size <= 0:
                break
            data = await stream.read_bytes(min(self.params.chunk_size, remaining), partial=True)
            remaining -= len(data)
            await self._deliver_body(delegate, data)
        # 2. the rest, spliced while the IOLoop does not watch the socket
        if (
            remaining > 0
            and not self._write_finished
            and not self._draining
            and not stream.writing()
            and not stream.closed()
            and body.ready()
        ):
            remaining -= await body.run(stream.socket.fileno(), remaining, self._spliced)
        # 3. whatever is left after an early stop: Tornado's own reading
        if remaining > 0:
            self._reading_bodies()
            await super()._read_fixed_body(remaining, delegate)

    def _reading_bodies(self) -> None:
        """Read the body ``chunk_size`` at a time (see :data:`HEAD_READ_SIZE`)."""
        self.stream.read_chunk_size = self._body_read_size

    def _reading_heads(self) -> None:
        """The body is read: what comes next is a request head (an idle
        IOStream reads one piece of it ahead)."""
        if not self.stream.closed():
            self.stream.read_chunk_size = min(HEAD_READ_SIZE, self._body_read_size)

    def _spliced(self, n: int) -> None:
        self._body_seen += n

    async def _deliver_body(self, delegate: tornado.httputil.HTTPMessageDelegate, data: bytes) -> None:
        self._body_seen += len(data)
        if not self._draining:
            await super()._deliver_body(delegate, data)
            return
        self._drained += len(data)
        self._last_read = self.stream.io_loop.time()
        if self._drained > self._drain_limit:
            self._give_up(f"more than {self._drain_limit} bytes")

    # --- ending a drain ----------------------------------------------------------

    def _give_up(self, why: str) -> None:
        gen_log.info("stopped draining a refused body from %s: %s", self.context, why)
        self._draining = False
        self._cancel_timer()
        if self._response_sent:
            self.close()
        else:
            self._disconnect_on_finish = True  # _finish_request closes after the write

    def _arm_timer(self) -> None:
        if self._drain_timer is None and self._draining:
            self._drain_timer = self.stream.io_loop.call_later(self._idle_timeout, self._check_idle)

    def _check_idle(self) -> None:
        self._drain_timer = None
        if not self._draining:
            return
        idle = self.stream.io_loop.time() - self._last_read
        if idle >= self._idle_timeout:
            self._give_up(f"idle for {idle:.1f}s")
        else:
            self._drain_timer = self.stream.io_loop.call_later(self._idle_timeout - idle, self._check_idle)

    def _cancel_timer(self) -> None:
        if self._drain_timer is not None:
            self.stream.io_loop.remove_timeout(self._drain_timer)
            self._drain_timer = None

    def close(self) -> None:
        self._draining = False
        self._cancel_timer()
        super().close()


def _spliceable(stream: tornado.iostream.IOStream) -> bool:
    """A plain-TCP IOStream whose internals :meth:`DrainingConnection._read_fixed_body`
    relies on (Tornado 6.x): TLS streams are never spliced."""
    return (
        type(stream) is tornado.iostream.IOStream
        and isinstance(getattr(stream, "_read_buffer_size", None), int)
        and hasattr(stream, "_state")
    )


def _large_body(
    stream: tornado.iostream.IOStream, headers: tornado.httputil.HTTPHeaders, at_least: int
) -> bool:
    """True if a request with these headers has a ``Content-Length`` body of
    ``at_least`` bytes that the idle plain-TCP ``stream`` would read ahead
    (nothing being written, no ``100-continue`` to wait for)."""
    length = headers.get("Content-Length", "")
    return (
        length.isdigit()
        and int(length) >= at_least
        and "Expect" not in headers
        and _spliceable(stream)
        and not stream.writing()
    )


def _unwatch(stream: tornado.iostream.IOStream) -> None:
    """Take the stream's socket off the IOLoop: with no read pending, an idle
    IOStream still listens for reads (to notice a close) and would read body
    bytes into its buffer behind the splice. Its next read or write registers
    the socket again (``_add_io_state`` with no state). Only called with no
    read pending and nothing left to write."""
    if stream._state is not None:
        stream.io_loop.remove_handler(stream.socket)
        stream._state = None


class DrainingServerConnection(HTTP1ServerConnection):
    """Serves one client connection with a :class:`DrainingConnection` per request."""

    def __init__(
        self,
        stream: tornado.iostream.IOStream,
        params: HTTP1ConnectionParameters,
        context: object,
        *,
        drain_limit: int,
        idle_timeout: float,
        splice_min: int = 0,
    ) -> None:
        super().__init__(stream, params, context)
        self._drain_limit = drain_limit
        self._idle_timeout = idle_timeout
        self._splice_min = splice_min
        self._body_read_size = stream.read_chunk_size
        stream.read_chunk_size = min(HEAD_READ_SIZE, self._body_read_size)

    async def _server_request_loop(self, delegate: tornado.httputil.HTTPServerConnectionDelegate) -> None:
        # Tornado's loop (6.x) with our connection class.
        try:
            while True:
                conn = DrainingConnection(
                    self.stream,
                    self.params,
                    self.context,
                    drain_limit=self._drain_limit,
                    idle_timeout=self._idle_timeout,
                    body_read_size=self._body_read_size,
                    splice_min=self._splice_min,
                )
                request_delegate = delegate.start_request(self, conn)
                try:
                    ret = await conn.read_response(request_delegate)
                except (
                    tornado.iostream.StreamClosedError,
                    tornado.iostream.UnsatisfiableReadError,
                    asyncio.CancelledError,
                ):
                    return
                except Exception:
                    gen_log.error("Uncaught exception", exc_info=True)
                    conn.close()
                    return
                if not ret:
                    return
                await asyncio.sleep(0)
        finally:
            delegate.on_close(self)


class TusHTTPServer(tornado.httpserver.HTTPServer):
    """Tornado's HTTPServer serving connections that drain refused bodies.

    Extra keyword arguments: ``drain_limit`` (bytes, 0 = never drain) and
    ``drain_idle_timeout`` (seconds), and ``splice_min``: bodies of at least
    this many bytes may be spliced, so the connection stops reading ahead once
    their head is parsed (0: zero-copy off, Tornado reads ahead as always).
    """

    def initialize(
        self,
        *args: Any,
        drain_limit: int = 0,
        drain_idle_timeout: float = 60.0,
        splice_min: int = 0,
        **kwargs: Any,
    ) -> None:
        super().initialize(*args, **kwargs)
        self.drain_limit = drain_limit
        self.drain_idle_timeout = drain_idle_timeout
        self.splice_min = splice_min

    def handle_stream(self, stream: tornado.iostream.IOStream, address: tuple[Any, ...]) -> None:
        context = tornado.httpserver._HTTPRequestContext(
            stream, address, self.protocol, self.trusted_downstream
        )
        conn = DrainingServerConnection(
            stream,
            self.conn_params,
            context,
            drain_limit=self.drain_limit,
            idle_timeout=self.drain_idle_timeout,
            splice_min=self.splice_min,
        )
        self._connections.add(conn)
        conn.start_serving(self)
