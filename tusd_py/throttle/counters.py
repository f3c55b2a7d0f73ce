"""Fixed-window request counters, in process or on Redis.

A window is ``period`` seconds of the injected clock: a hit on ``(scope,
ident)`` increments the counter of that key in the current window number and
learns the new count in one step. Because the window number comes from our
clock, every instance agrees on window boundaries and tests can step time
instead of waiting for a minute to pass.

Stores:

* :class:`InProcessCounters`: one ``Counter`` per live window; a new window
  drops the ones before the previous, so a hit is O(1).
* :class:`RedisCounters`: ``limits``' async Redis storage (redis-py bridge on
  our shared connection pool): an atomic Lua INCR+EXPIRE per hit, keys
  ``<prefix>limits:<scope>/<window>/<ident>`` expiring after the window.
  (``limits``' in-process ``MemoryStorage`` is not used: every hit schedules
  a task that rescans all live keys — measured 154 µs per hit with 1,000
  live keys, 1.4 ms with 10,000 — where a dict per window is O(1).)
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from tusd_py.throttle.backend_errors import map_backend_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis


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


class CounterStore(Protocol):
    async def incr(self, key: str, window: int, ttl: int) -> int:
        """Add one to ``key`` in ``window``; returns the new count. ``ttl``
        (seconds) bounds how long the store must remember it."""

    async def close(self) -> None: ...


class InProcessCounters:
    """Counters of one process (atomic on the event loop)."""

    def __init__(self) -> None:
        self._windows: dict[int, Counter[str]] = {}

    async def incr(self, key: str, window: int, ttl: int) -> int:
        counts = self._windows.get(window)
        if counts is None:
            for old in [w for w in self._windows if w < window - 1]:
                del self._windows[old]
            counts = self._windows[window] = Counter()
        counts[key] += 1
        return counts[key]

    async def close(self) -> None:
        self._windows.clear()


class RedisCounters:
    """Counters shared through Redis by every instance (see module docstring)."""

    def __init__(self, redis: Redis, *, url: str, prefix: str) -> None:
        scheme = "async+redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url
        if not scheme.startswith("async+"):
            scheme = "async+" + scheme
        from limits.aio.storage import RedisStorage  # loaded only with Redis

        self._storage = RedisStorage(
            scheme,
            wrap_exceptions=True,
            implementation="redispy",
            key_prefix=f"{prefix}limits",
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )

    async def incr(self, key: str, window: int, ttl: int) -> int:
        with map_backend_errors("rate limit"):
            return int(await self._storage.incr(f"{key}/{window}", ttl))

    async def close(self) -> None:
        return None  # the connection pool is shared and closed by its owner


class WindowCounters:
    """Counts hits per fixed window of ``period`` seconds on ``store``."""

    def __init__(
        self,
        store: CounterStore,
        *,
        clock: Callable[[], float] = time.time,
        period: float = 60.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.period = period

    async def hit(self, name: str, scope: str, ident: str, limit: int) -> WindowHit:
        """Count one request against ``limit`` for ``(scope, ident)`` in this window.

        Raises :class:`tusd_py.core.errors.StateStoreError` when the backend fails.
        """
        window = math.floor(self.clock() / self.period)
        count = await self.store.incr(f"{scope}/{ident}", window, math.ceil(self.period) + 1)
        return WindowHit(name=name, limit=limit, count=count, reset_at=(window + 1) * self.period)

    async def close(self) -> None:
        await self.store.close()
