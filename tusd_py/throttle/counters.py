"""Fixed-window request counters on a ``limits`` storage (in-process or Redis).

A window is ``period`` seconds of the injected clock: a hit on ``(scope,
ident)`` increments the counter of key ``scope/<window number>/ident``
atomically (``limits``' Lua INCR+EXPIRE on Redis, a locked ``Counter`` in
process) and learns the new count in one round trip. Keys expire shortly
after their window. Because the window number comes from our clock, every
instance agrees on window boundaries and tests can step time instead of
waiting for a minute to pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from redis.asyncio import Redis

from tusd_py.throttle.backend_errors import map_backend_errors


@dataclass(frozen=True, slots=True)
class WindowHit:
    """The state of one limit after a hit."""

    #: Human description, e.g. "10 upload creations per minute per IP address".
    name: str
    limit: int
    count: int
    #: Clock time (seconds) at which the window ends.
    reset_at: float

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)


class WindowCounters:
    """Counts hits per fixed window; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Callable[[], float] = time.time,
        period: float = 60.0,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.period = period

    @classmethod
    def in_process(cls, *, clock: Callable[[], float] = time.time, period: float = 60.0) -> WindowCounters:
        return cls(MemoryStorage(wrap_exceptions=True), clock=clock, period=period)

    @classmethod
    def on_redis(
        cls,
        redis: Redis,
        *,
        url: str,
        prefix: str,
        clock: Callable[[], float] = time.time,
        period: float = 60.0,
    ) -> WindowCounters:
        """Counters sharing ``redis``'s connection pool, keys under ``<prefix>limits:``."""
        scheme = "async+redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url
        if not scheme.startswith("async+"):
            scheme = "async+" + scheme
        storage = RedisStorage(
            scheme,
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=f"{prefix}limits",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        return cls(storage, clock=clock, period=period)

    async def hit(self, name: str, scope: str, ident: str, limit: int) -> WindowHit:
        """Count one request against ``limit`` for ``(scope, ident)`` in this window.

        Raises :class:`tusd_py.errors.StateStoreError` when the backend fails.
        """
        now = self.clock()
        window = math.floor(now / self.period)
        key = f"{scope}/{window}/{ident}"
        with map_backend_errors("rate limit"):
            count = await self.storage.incr(key, math.ceil(self.period) + 1)
        return WindowHit(name=name, limit=limit, count=int(count), reset_at=(window + 1) * self.period)

    async def close(self) -> None:
        """Stop the in-process storage's expiry task (the Redis pool is shared, not closed here)."""
        timer = getattr(self.storage, "timer", None)
        if isinstance(timer, asyncio.Task) and not timer.done():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
