"""A fault-injecting TCP proxy for end-to-end tests (asyncio, 127.0.0.1 only).

``FaultProxy(upstream_port, ...)`` listens on a free loopback port and relays
every connection to ``127.0.0.1:upstream_port``. In the directions listed in
``fault_directions`` it counts bytes and, every ``cut_min..cut_max`` bytes
(drawn from a seeded RNG), injects one fault:

* ``cut`` — both sockets are closed right after the threshold byte; bytes the
  proxy has read but not forwarded are dropped (never counted as sent);
* ``stall`` (probability ``stall_probability``, at most ``max_stalls`` times) —
  a black hole: nothing is read or forwarded for ``stall_seconds`` (longer than
  the client's timeout), then both sockets are closed;
* ``pause`` (probability ``pause_probability``) — nothing moves for
  ``pause_seconds`` (shorter than the client's timeout), then relaying goes on.

``rate`` (bytes/s, changeable while running; None = unlimited) throttles both
directions. ``upstream_bytes`` counts every byte written towards the server
(headers included); ``downstream_bytes`` the other way.

Bounded lifetime: the proxy runs in its own thread and event loop and stops by
itself after ``lifetime`` seconds (or on :meth:`stop`), closing every
connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Collection
from dataclasses import dataclass, field

MIB = 1 << 20
_READ = 256 * 1024


class _Cut(Exception):
    """This connection pair must be closed now."""


@dataclass
class ProxyStats:
    connections: int = 0
    cuts: int = 0
    stalls: int = 0
    pauses: int = 0
    upstream_bytes: int = 0
    downstream_bytes: int = 0
    faults: list[str] = field(default_factory=list)


class FaultProxy:
    """See the module docstring. Use as a context manager or call :meth:`start`/:meth:`stop`."""

    def __init__(
        self,
        upstream_port: int,
        *,
        fault_directions: Collection[str] = ("up",),
        cut_min: int = 2 * MIB,
        cut_max: int = 6 * MIB,
        stall_probability: float = 0.0,
        stall_seconds: float = 3.0,
        max_stalls: int = 3,
        pause_probability: float = 0.0,
        pause_seconds: float = 0.3,
        rate: float | None = None,
        seed: int = 7,
        lifetime: float = 180.0,
    ) -> None:
        self.upstream_port = upstream_port
        self.fault_directions = frozenset(fault_directions)
        self.cut_min = cut_min
        self.cut_max = cut_max
        self.stall_probability = stall_probability
        self.stall_seconds = stall_seconds
        self.max_stalls = max_stalls
        self.pause_probability = pause_probability
        self.pause_seconds = pause_seconds
        self.rate = rate
        self.lifetime = lifetime
        self.stats = ProxyStats()
        self.port = 0
        self._rng = random.Random(seed)
        self._until_fault = self._draw()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="fault-proxy", daemon=True)
        self._error: BaseException | None = None

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        self._thread.join(15)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            tasks.add(task)
            try:
                await self._relay(reader, writer)
            finally:
                tasks.discard(task)

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.lifetime)
        finally:
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.wait_closed()

    # --- relaying ----------------------------------------------------------------

    def _draw(self) -> int:
        return self._rng.randint(self.cut_min, self.cut_max)

    def _choose_fault(self) -> str:
        roll = self._rng.random()
        if roll < self.stall_probability and self.stats.stalls < self.max_stalls:
            return "stall"
        if roll < self.stall_probability + self.pause_probability:
            return "pause"
        return "cut"

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        up = asyncio.create_task(self._pump(client_r, server_w, "up"))
        down = asyncio.create_task(self._pump(server_r, client_w, "down"))
        try:
            done, _pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            cut = any(isinstance(t.exception(), _Cut) for t in done if not t.cancelled())
            if not cut:
                # One side finished cleanly: let the other drain what is in flight.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.gather(up, down, return_exceptions=True), 30)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            for writer in (server_w, client_w):
                writer.close()
            for writer in (server_w, client_w):
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        faulty = direction in self.fault_directions
        while True:
            try:
                data = await reader.read(_READ)
            except OSError:
                raise _Cut() from None
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            while data:
                piece = data
                if faulty:
                    piece, data = data[: self._until_fault], data[self._until_fault :]
                    self._until_fault -= len(piece)
                else:
                    data = b""
                writer.write(piece)
                if direction == "up":
                    self.stats.upstream_bytes += len(piece)
                else:
                    self.stats.downstream_bytes += len(piece)
                try:
                    await writer.drain()
                except OSError:
                    raise _Cut() from None
                rate = self.rate
                if rate:
                    await asyncio.sleep(len(piece) / rate)
                if faulty and self._until_fault <= 0:
                    self._until_fault = self._draw()
                    await self._fault()

    async def _fault(self) -> None:
        kind = self._choose_fault()
        self.stats.faults.append(kind)
        if kind == "pause":
            self.stats.pauses += 1
            await asyncio.sleep(self.pause_seconds)
            return
        if kind == "stall":
            self.stats.stalls += 1
            await asyncio.sleep(self.stall_seconds)
        else:
            self.stats.cuts += 1
        raise _Cut()
