"""The client's HTTP transport on loopback: foreign errors become TransportError, 100-continue.

Each test runs a tiny raw-socket server in a thread (bounded by timeouts) that
misbehaves in one specific way.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from tusd_py.cli.client.errors import TransportError
from tusd_py.cli.client.transport import HttpTransport


class Body:
    def __init__(self, data: bytes) -> None:
        self.length = len(data)
        self._data = data

    def read(self, size: int) -> bytes:
        block, self._data = self._data[:size], self._data[size:]
        return block


def _read_head(conn: socket.socket) -> bytes:
    """The request head, read byte by byte so no body byte is consumed with it."""
    data = b""
    while not data.endswith(b"\r\n\r\n"):
        byte = conn.recv(1)
        if not byte:
            break
        data += byte
    return data


@contextlib.contextmanager
def raw_server(handle: Callable[[socket.socket], None], connections: int = 1) -> Iterator[str]:
    """A loopback server running ``handle`` on each of ``connections`` connections."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(connections):
            try:
                conn, _addr = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                with contextlib.suppress(OSError):
                    handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/files/x"
    finally:
        listener.close()
        thread.join(15)


def test_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/files/"
        with pytest.raises(TransportError, match="connection refused"):
            with contextlib.closing(HttpTransport(timeout=2)) as transport:
                transport.request("HEAD", url, {})


def test_closed_without_answer() -> None:
    with raw_server(lambda conn: _read_head(conn)) as url:
        with contextlib.closing(HttpTransport(timeout=5)) as transport:
            with pytest.raises(TransportError, match="closed the connection without answering"):
                transport.request("HEAD", url, {})


def test_silent_server_times_out() -> None:
    done = threading.Event()

    def hang(conn: socket.socket) -> None:
        _read_head(conn)
        done.wait(10)

    with raw_server(hang) as url:
        try:
            with contextlib.closing(HttpTransport(timeout=0.3)) as transport:
                with pytest.raises(TransportError, match="timed out"):
                    transport.request("HEAD", url, {})
        finally:
            done.set()


def test_truncated_body_is_an_error_not_a_short_file() -> None:
    def short(conn: socket.socket) -> None:
        _read_head(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 400)

    with raw_server(short) as url, contextlib.closing(HttpTransport(timeout=5)) as transport:
        response = transport.request("GET", url, {})
        received = bytearray()
        with pytest.raises(TransportError, match="closed mid-response"):
            for block in response.iter_blocks(128):
                received += block
        assert len(received) == 400


def test_refusal_before_the_body_costs_no_body_bytes() -> None:
    seen: list[bytes] = []

    def refuse(conn: socket.socket) -> None:
        head = _read_head(conn)
        seen.append(head)
        conn.sendall(b"HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno")
        conn.settimeout(1)
        with contextlib.suppress(OSError):
            seen.append(conn.recv(65536))

    sent: list[int] = []
    with raw_server(refuse) as url, contextlib.closing(HttpTransport(timeout=5)) as transport:
        response = transport.request("PATCH", url, {}, Body(b"z" * 100_000), sent.append)
        assert response.status == 409 and response.read() == b"no"
    assert b"Expect: 100-continue" in seen[0]
    assert sent == [] and seen[1:] in ([], [b""])


def test_server_that_ignores_expect_gets_the_body_after_the_wait() -> None:
    bodies: list[int] = []

    def old_server(conn: socket.socket) -> None:
        for _ in range(2):
            head = _read_head(conn)
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            got = 0
            while got < length:
                got += len(conn.recv(65536))
            bodies.append(got)
            conn.sendall(b"HTTP/1.1 204 No Content\r\nUpload-Offset: 5\r\n\r\n")
            bodies.append(int(b"Expect" in head))

    with (
        raw_server(old_server) as url,
        contextlib.closing(HttpTransport(timeout=5, expect_timeout=0.2)) as transport,
    ):
        for _ in range(2):
            response = transport.request("PATCH", url, {}, Body(b"hello"))
            assert response.status == 204 and response.headers.get("upload-offset") == "5"
    # The first request asked (and waited), the second did not ask again.
    assert bodies == [5, 1, 5, 0]


def test_continue_then_keep_alive() -> None:
    heads: list[bytes] = []

    def modern(conn: socket.socket) -> None:
        for _ in range(2):
            head = _read_head(conn)
            heads.append(head)
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            got = 0
            while got < 6:
                got += len(conn.recv(65536))
            conn.sendall(b"HTTP/1.1 204 No Content\r\nUpload-Offset: 6\r\n\r\n")

    # One connection serves both requests (the server accepts only one).
    with raw_server(modern) as url, contextlib.closing(HttpTransport(timeout=5)) as transport:
        assert transport.request("PATCH", url, {"X-A": "1"}, Body(b"abcdef")).status == 204
        assert transport.request("PATCH", url, {"X-A": "2"}, Body(b"abcdef")).status == 204
    assert all(b"Expect: 100-continue" in head for head in heads) and len(heads) == 2
