"""HTTP/1.1 requests for the client commands, on the standard library's ``http.client``.

Why ``http.client``: it streams a request body block by block from any source
(the client never holds a file in memory), keeps connections alive, speaks
HTTPS, and adds no dependency. What it lacks is added here:

* ``Expect: 100-continue`` for requests with a body: the headers go first and
  the body only after the server's ``100 Continue``. A server that refuses the
  request (409 offset moved, 413, 415, 401, ...) answers before a single body
  byte crosses the link, so a refused PATCH wastes no bandwidth. A server that
  never answers the expectation within ``expect_timeout`` gets the body anyway
  and later requests to it skip the header.
* an early response: if sending the body fails because the server answered
  and closed (e.g. 415 after sniffing the first bytes), that answer is read
  and returned instead of a bare "connection reset".
* foreign exceptions (``OSError`` incl. timeouts, ``http.client.HTTPException``)
  become :class:`TransportError` here, at the boundary.

A :class:`HttpTransport` keeps one connection per origin and is not thread-safe;
give every thread its own. Every socket operation is bounded by ``timeout``
seconds (a stalled link is detected, not waited on forever).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import socket
import ssl
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from tusd_py.cli.client.errors import ClientError, TransportError

USER_AGENT = "tusd-py-client/1"
_MAX_ERROR_BODY = 64 * 1024
_MAX_LINE = 4096
_BLOCK = 1 << 20
_SEND_SLICE = 64 * 1024


class Body(Protocol):
    """A request body of a known ``length``, read in blocks (``read`` returns b"" at the end)."""

    length: int

    def read(self, size: int) -> bytes: ...


class Headers:
    """Case-insensitive response headers (the last value wins)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._items = {name.lower(): value for name, value in pairs}

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class Response:
    """A response whose body has not been read yet. Read it (or ``close``) before the next request."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        raw: http.client.HTTPResponse | None,
        on_abandon: Callable[[], None],
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._raw = raw
        self._on_abandon = on_abandon

    def read(self, limit: int = _MAX_ERROR_BODY) -> bytes:
        """The body, up to ``limit`` bytes (a longer body is cut and the connection dropped)."""
        if self._raw is None:
            return b""
        try:
            data = self._raw.read(limit + 1)
            if len(data) > limit:
                self.close()
                return data[:limit]
            if not self._raw.isclosed():
                self._raw.read()
            return data
        except (OSError, http.client.HTTPException) as exc:
            self._abandon()
            raise TransportError(f"reading the response failed: {describe_error(exc)}") from exc
        finally:
            self._raw = None

    def json(self, limit: int = 16 << 20) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return json.loads(self.read(limit).decode("utf-8"))

    def iter_blocks(self, size: int = _BLOCK) -> Iterator[bytes]:
        """Stream the body in blocks of at most ``size`` bytes; raises :class:`TransportError`."""
        raw = self._raw
        if raw is None:
            return
        try:
            while True:
                block = raw.read(size)
                if not block:
                    break
                yield block
            # http.client ends a Content-Length body cut short with a silent b"".
            missing = raw.length
            if missing:
                raise http.client.IncompleteRead(b"", missing)
        except (OSError, http.client.HTTPException) as exc:
            self._abandon()
            raise TransportError(f"download interrupted: {describe_error(exc)}") from exc
        finally:
            self._raw = None

    def close(self) -> None:
        """Discard the rest of the body (and the connection, if any was left unread)."""
        if self._raw is not None:
            self._abandon()

    def _abandon(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()
        self._on_abandon()


class Transport(Protocol):
    """Sends one request and returns its response (the uploader's only view of the network)."""

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> Response:
        """Raises :class:`TransportError` if no response arrived. ``on_sent(n)`` is called as body
        bytes are handed to the network."""
        ...

    def close(self) -> None: ...


def describe_error(exc: BaseException) -> str:
    """A short human description of a network exception."""
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.RemoteDisconnected):  # a ConnectionResetError too
        return "server closed the connection without answering"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "connection closed by peer while sending"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed mid-response"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host ({exc.strerror})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error ({exc.reason or exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


class _EarlyResponse(Exception):
    """The server answered before we sent the body."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response


class _Attempt:
    """Book-keeping of one try of a request."""

    def __init__(self) -> None:
        self.body_started = False
        self.sent = 0


class _PrefixedRaw(io.RawIOBase):
    """Reads ``prefix`` first, then from ``source``."""

    def __init__(self, prefix: bytes, source: Any) -> None:
        self._pending = prefix
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pending:
            n = min(len(buffer), len(self._pending))
            buffer[:n] = self._pending[:n]
            self._pending = self._pending[n:]
            return n
        result: int = self._source.readinto(buffer)
        return result

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._source.close()
        super().close()


class _Prefixed:
    """A socket stand-in for ``HTTPResponse`` whose reads start with bytes already consumed."""

    def __init__(self, prefix: bytes, sock: socket.socket) -> None:
        self._prefix = prefix
        self._sock = sock

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_PrefixedRaw(self._prefix, self._sock.makefile("rb", buffering=0)))


class HttpTransport:
    """:class:`Transport` over ``http.client`` with keep-alive (one connection per origin)."""

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        expect_timeout: float | None = None,
        block_size: int = _BLOCK,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.timeout = timeout
        self.expect_timeout = expect_timeout if expect_timeout is not None else timeout
        self.block_size = block_size
        self._ssl = ssl_context
        self.user_agent = user_agent
        self._conns: dict[tuple[str, str, int], http.client.HTTPConnection] = {}
        self._used: set[tuple[str, str, int]] = set()
        self._no_expect: set[tuple[str, str, int]] = set()
        self._continued: set[tuple[str, str, int]] = set()

    def close(self) -> None:
        for key in list(self._conns):
            self._drop(key)

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> Response:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TransportError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        key = (parts.scheme, parts.hostname, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

        def counted(n: int) -> None:
            if on_sent is not None:
                on_sent(n)

        reused = key in self._used and key in self._conns
        state = _Attempt()
        try:
            return self._send(key, method, target, headers, body, counted, state)
        except TransportError:
            # A kept-alive connection the server closed while idle fails before anything
            # was exchanged: retry once on a fresh connection.
            if not reused or state.body_started:
                raise
            return self._send(key, method, target, headers, body, counted, _Attempt())

    # --- internals -------------------------------------------------------------

    def _connection(self, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        conn = self._conns.get(key)
        if conn is None:
            scheme, host, port = key
            if scheme == "https":
                context = self._ssl or ssl.create_default_context()
                conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=context)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
            self._conns[key] = conn
        return conn

    def _drop(self, key: tuple[str, str, int]) -> None:
        conn = self._conns.pop(key, None)
        self._used.discard(key)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _send(
        self,
        key: tuple[str, str, int],
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: Body | None,
        on_sent: Callable[[int], None],
        state: _Attempt,
    ) -> Response:
        conn = self._connection(key)
        expect = body is not None and body.length > 0 and key not in self._no_expect
        try:
            try:
                conn.putrequest(method, target, skip_accept_encoding=True)
                conn.putheader("User-Agent", self.user_agent)
                for name, value in headers.items():
                    conn.putheader(name, value)
                if body is not None:
                    conn.putheader("Content-Length", str(body.length))
                    if expect:
                        conn.putheader("Expect", "100-continue")
                elif method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", "0")
                conn.endheaders()
                if body is not None and body.length > 0:
                    if expect:
                        self._await_continue(key, conn, method)
                    state.body_started = True
                    try:
                        self._send_body(conn, body, on_sent, state)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _EarlyResponse(self._late_response(conn, method, exc)) from None
                raw = conn.getresponse()
            except _EarlyResponse as early:
                raw = early.response
                raw.will_close = True
        except (OSError, http.client.HTTPException) as exc:
            self._drop(key)
            raise TransportError(
                f"{method} {key[1]}:{key[2]}{target}: {describe_error(exc)}", sent=state.sent
            ) from exc
        except BaseException:
            self._drop(key)
            raise
        self._used.add(key)
        if raw.will_close:
            # The connection ends with this response (the server said so, or we
            # skipped a body it expected): never reuse it. The response keeps
            # its own reference to the socket until it is read.
            self._conns.pop(key, None)
            self._used.discard(key)
            conn.close()
        headers_out = Headers(raw.getheaders())
        response = Response(raw.status, raw.reason, headers_out, raw, lambda: self._drop(key))
        if method == "HEAD" or raw.status in (204, 304):
            response.read()
        return response

    def _await_continue(
        self, key: tuple[str, str, int], conn: http.client.HTTPConnection, method: str
    ) -> None:
        """Wait for ``100 Continue``; raise :class:`_EarlyResponse` on a final answer."""
        sock = conn.sock
        assert sock is not None
        sock.settimeout(self.expect_timeout)
        try:
            line = b""
            while not line.endswith(b"\n"):
                byte = sock.recv(1)
                if not byte:
                    raise http.client.RemoteDisconnected("server closed the connection without answering")
                line += byte
                if len(line) > _MAX_LINE:
                    raise http.client.LineTooLong("status line")
        except TimeoutError:
            if line or key in self._continued:
                raise  # this server does answer expectations: the link is dead
            # No answer to the expectation: send the body anyway, and stop asking this origin.
            self._no_expect.add(key)
            return
        finally:
            sock.settimeout(self.timeout)
        fields = line.split(None, 2)
        if len(fields) >= 2 and fields[1] == b"100":
            blank = b""
            while blank not in (b"\r\n", b"\n"):  # skip the interim response's header block
                blank = b""
                while not blank.endswith(b"\n"):
                    byte = sock.recv(1)
                    if not byte:
                        raise http.client.RemoteDisconnected("server closed after 100 Continue")
                    blank += byte
                    if len(blank) > _MAX_LINE:
                        raise http.client.LineTooLong("header line")
            self._continued.add(key)
            return
        response = http.client.HTTPResponse(_Prefixed(line, sock), method=method)  # type: ignore[arg-type]
        response.begin()
        raise _EarlyResponse(response)

    def _send_body(
        self, conn: http.client.HTTPConnection, body: Body, on_sent: Callable[[int], None], state: _Attempt
    ) -> None:
        remaining = body.length
        while remaining > 0:
            block = body.read(min(self.block_size, remaining))
            if not block:
                raise ClientError("the file got shorter while it was being uploaded; run the command again")
            view = memoryview(block)
            # Send in slices: the socket timeout bounds each send call, so a slow link
            # is not mistaken for a dead one.
            for start in range(0, len(view), _SEND_SLICE):
                piece = view[start : start + _SEND_SLICE]
                conn.send(piece)
                state.sent += len(piece)
                on_sent(len(piece))
            remaining -= len(block)

    def _late_response(
        self, conn: http.client.HTTPConnection, method: str, exc: BaseException
    ) -> http.client.HTTPResponse:
        """After a send failure, the answer the server may have sent before closing."""
        if isinstance(exc, TimeoutError) or conn.sock is None:
            raise exc
        sock = conn.sock
        try:
            sock.settimeout(min(1.0, self.timeout))
            response = http.client.HTTPResponse(sock, method=method)
            response.begin()
        except (OSError, http.client.HTTPException):
            raise exc from None
        response.will_close = True
        return response
