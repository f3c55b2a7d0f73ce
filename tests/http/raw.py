"""Raw HTTP/1.1 over asyncio streams, for what an HTTP client library hides.

Used to cut a request mid-body (FIN or RST), to stall a body, to see
``100 Continue`` interim responses and to send malformed requests. Every
read has a deadline; nothing here sleeps for synchronisation.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

#: Deadline of one read from the server.
READ_TIMEOUT = 20.0


@dataclass
class RawResponse:
    """A parsed response (interim responses have an empty body)."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request_head(method: str, path: str, headers: Mapping[str, str], host: str = "127.0.0.1") -> bytes:
    """The start line and header block of a request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RawConnection:
    """One TCP connection to the server under test."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> None:
        """Send a request head and (part of) a body; headers are sent as given."""
        await self.send(request_head(method, path, headers) + body)

    async def read_response(self, method: str = "PATCH", timeout: float = READ_TIMEOUT) -> RawResponse:
        """Read one response (interim or final) within ``timeout`` seconds."""
        return await asyncio.wait_for(self._read_response(method), timeout)

    async def _read_response(self, method: str) -> RawResponse:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        assert version.startswith("HTTP/1."), lines[0]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        code = int(status)
        body = b""
        if method != "HEAD" and code >= 200 and code not in (204, 304):
            length = int(headers.get("content-length", "0"))
            body = await self.reader.readexactly(length)
        return RawResponse(code, reason[0] if reason else "", headers, body)

    async def read_until_closed(self, timeout: float = READ_TIMEOUT) -> bytes:
        """Everything the server sends until it closes the connection.

        A reset by the server counts as closed. Raises ``TimeoutError`` if the
        connection is still open after ``timeout`` seconds.
        """

        async def drain() -> bytes:
            data = bytearray()
            try:
                while chunk := await self.reader.read(65536):
                    data += chunk
            except ConnectionResetError:
                pass
            return bytes(data)

        return await asyncio.wait_for(drain(), timeout)

    def close_fin(self) -> None:
        """Close normally: the server sees end-of-stream (FIN)."""
        self.writer.close()

    def close_rst(self) -> None:
        """Abort: ``SO_LINGER`` 0 makes close send a TCP reset (RST)."""
        sock: socket.socket = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def aclose(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 15.0, interval: float = 0.02
) -> T:
    """Poll ``check`` until it returns something other than None/False.

    Bounded by ``timeout`` seconds (raises ``AssertionError`` with the last
    value seen); the interval only paces the polling.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while loop.time() < deadline:
        last = await check()
        if last is not None and last is not False:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")
