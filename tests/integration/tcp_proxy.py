"""A small loopback TCP proxy for fault injection in front of the S3 endpoint.

* ``rate``: bytes per second forwarded client → upstream (None = unlimited),
  to make S3 slower than the client;
* :meth:`TcpProxy.freeze` / :meth:`TcpProxy.thaw`: connections are still
  accepted but nothing is forwarded either way (an endpoint that does not
  answer);
* :meth:`TcpProxy.stop` closes the listening socket and every connection (the
  endpoint is down: connections are refused); :meth:`TcpProxy.start` listens
  again on the same port.

Runs on the test's asyncio loop; loopback only; every connection ends when
either side closes or the proxy stops.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, upstream_port: int, *, rate: float | None = None, host: str = "127.0.0.1") -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self.host = host
        self.port = 0
        self.forwarded = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def freeze(self) -> None:
        """Stop forwarding (connections stay open and new ones are accepted)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again."""
        self._flowing.set()

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            self._tasks.discard(task)
            return
        self._writers.add(up_writer)
        try:
            await asyncio.gather(self._pump(reader, up_writer, True), self._pump(up_reader, writer, False))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (writer, up_writer):
                w.transport.abort()
                self._writers.discard(w)
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            await self._flowing.wait()
            if upstream and self.rate:
                await asyncio.sleep(len(data) / self.rate)
            writer.write(data)
            await writer.drain()
            if upstream:
                self.forwarded += len(data)
