"""``RedisBridge``: live events across instances through Redis pub/sub.

Every instance publishes what its :class:`~tusd_py.events.live.hub.LiveHub` publishes
on one channel (``<redis.prefix>live``) as ``{"origin", "user", "event"}`` and
delivers what the others published to its own subscribers (its own messages,
already delivered locally, are skipped by ``origin``).

Nothing here blocks an upload: :meth:`RedisBridge.send` only appends to a
bounded outbox (the oldest message is dropped when full, counted in
:attr:`RedisBridge.dropped`) that one writer task drains. When Redis is down
the writer drops what it cannot send and the reader resubscribes with
backoff; live events are best effort, the state store stays the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

log = logging.getLogger("tusd_py.app")

#: Messages waiting for the writer before the oldest is dropped.
OUTBOX_SIZE = 1024
#: Seconds one read of the subscription waits (below the client's socket timeout).
READ_WAIT = 1.0
#: Longest pause between two reconnection attempts.
MAX_BACKOFF = 5.0

Deliver = Callable[[str, dict[str, Any]], None]


class RedisBridge:
    """Publishes local events to, and delivers remote events from, one Redis channel."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.origin = secrets.token_hex(8)
        #: Outgoing messages dropped (outbox full or Redis unavailable).
        self.dropped = 0
        #: Remote events delivered here.
        self.received = 0
        self._outbox: deque[bytes] = deque(maxlen=OUTBOX_SIZE)
        self._wake = asyncio.Event()
        self._subscribed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def send(self, user: str, event: dict[str, Any]) -> None:
        """Queue ``event`` for the other instances; never blocks."""
        if len(self._outbox) == OUTBOX_SIZE:
            self.dropped += 1
        self._outbox.append(json.dumps({"origin": self.origin, "user": user, "event": event}).encode())
        self._wake.set()

    async def start(self, deliver: Deliver) -> None:
        """Start the writer and reader tasks; returns once subscribed (or after
        :data:`READ_WAIT` seconds when Redis does not answer yet)."""
        self._tasks = [
            asyncio.create_task(self._write()),
            asyncio.create_task(self._read(deliver)),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), READ_WAIT)

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def _write(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                message = self._outbox.popleft()
                try:
                    await self.client.publish(self.channel, message)
                    failures = 0
                except (redis.exceptions.RedisError, OSError) as exc:
                    self.dropped += 1
                    failures += 1
                    if failures == 1:
                        log.warning("live events: Redis publish failed: %s", exc)
                    await asyncio.sleep(min(0.1 * 2**failures, MAX_BACKOFF))

    async def _read(self, deliver: Deliver) -> None:
        failures = 0
        while True:
            pubsub = self.client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self._subscribed.set()
                failures = 0
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=READ_WAIT)
                    if message is not None:
                        self._deliver(message.get("data"), deliver)
            except (redis.exceptions.RedisError, OSError) as exc:
                failures += 1
                if failures == 1:
                    log.warning("live events: Redis subscription lost: %s", exc)
                await asyncio.sleep(min(0.1 * 2**failures, MAX_BACKOFF))
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    def _deliver(self, data: object, deliver: Deliver) -> None:
        if not isinstance(data, bytes | str):
            return
        try:
            message = json.loads(data)
            if message["origin"] == self.origin:
                return
            user, event = message["user"], message["event"]
        except (ValueError, KeyError, TypeError):
            log.warning("live events: malformed message on %s ignored", self.channel)
            return
        if isinstance(user, str) and isinstance(event, dict):
            self.received += 1
            deliver(user, event)
