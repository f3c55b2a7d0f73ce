"""Per-user stream leases: how many request bodies a user streams at once.

A lease is ``(user, lease id)`` with an expiry on the injected clock. A user
holds at most ``limit`` live leases; taking one, refreshing the ones a
process holds (its heartbeat) and giving one back are atomic. A process that
dies stops refreshing, so its leases lapse after the TTL and the slots come
back without anyone cleaning up.

Two stores pass one contract suite (``tests/contract/test_throttle.py``):

* :class:`MemoryLeaseStore`: dicts, for a single instance;
* :class:`RedisLeaseStore`: one sorted set per user (member = lease id,
  score = expiry in ms) under ``<prefix>leases:<user>``; acquisition is one
  Lua script (drop lapsed members, count, add if below the limit), refresh is
  a MULTI of ``ZADD``/``PEXPIRE`` pairs, release is ``ZREM``. The key itself
  expires (server time) a while after its newest lease so abandoned users
  leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tusd_py.throttle.backend_errors import map_backend_errors

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: ``(user, lease id)``
LeaseRef = tuple[str, str]


@runtime_checkable
class LeaseStore(Protocol):
    async def acquire(self, user: str, lease: str, limit: int, now: float, ttl: float) -> bool:
        """Take ``lease`` for ``user`` unless ``limit`` live leases exist; True if taken.

        Leases whose expiry is at or before ``now`` do not count (and are dropped)."""

    async def refresh(self, leases: Sequence[LeaseRef], now: float, ttl: float) -> None:
        """Push the expiry of ``leases`` to ``now + ttl`` (re-adding lapsed ones)."""

    async def release(self, user: str, lease: str) -> None:
        """Give ``lease`` back; idempotent."""

    async def count(self, user: str, now: float) -> int:
        """Live leases of ``user`` at ``now``."""


class MemoryLeaseStore:
    """Leases of one process, in dicts (every call is atomic on the event loop)."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, float]] = {}

    def _live(self, user: str, now: float) -> dict[str, float]:
        leases = self._users.get(user, {})
        live = {lease: expiry for lease, expiry in leases.items() if expiry > now}
        if live:
            self._users[user] = live
        else:
            self._users.pop(user, None)
        return live

    async def acquire(self, user: str, lease: str, limit: int, now: float, ttl: float) -> bool:
        live = self._live(user, now)
        if len(live) >= limit:
            return False
        live[lease] = now + ttl
        self._users[user] = live
        return True

    async def refresh(self, leases: Sequence[LeaseRef], now: float, ttl: float) -> None:
        for user, lease in leases:
            self._users.setdefault(user, {})[lease] = now + ttl

    async def release(self, user: str, lease: str) -> None:
        held = self._users.get(user)
        if held is not None:
            held.pop(lease, None)
            if not held:
                self._users.pop(user, None)

    async def count(self, user: str, now: float) -> int:
        return len(self._live(user, now))


_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[5]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return 1
"""


class RedisLeaseStore:
    """Leases shared by every instance on one Redis (see module docstring)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = f"{prefix}leases:"
        self._acquire = redis.register_script(_ACQUIRE)

    def _key(self, user: str) -> str:
        return self.prefix + user

    @staticmethod
    def _key_ttl_ms(ttl: float) -> int:
        # Server-time garbage collection of the whole key; generous so clock
        # skew between instances never drops a live lease.
        return int(ttl * 1000) * 4 + 60_000

    async def acquire(self, user: str, lease: str, limit: int, now: float, ttl: float) -> bool:
        with map_backend_errors("concurrency limit"):
            taken = await self._acquire(
                keys=[self._key(user)],
                args=[int(now * 1000), int(ttl * 1000), limit, lease, self._key_ttl_ms(ttl)],
            )
        return bool(int(taken))

    async def refresh(self, leases: Sequence[LeaseRef], now: float, ttl: float) -> None:
        if not leases:
            return
        expiry = int((now + ttl) * 1000)
        with map_backend_errors("concurrency limit"):
            async with self.redis.pipeline(transaction=True) as pipe:
                for user, lease in leases:
                    pipe.zadd(self._key(user), {lease: expiry})
                    pipe.pexpire(self._key(user), self._key_ttl_ms(ttl))
                await pipe.execute()

    async def release(self, user: str, lease: str) -> None:
        with map_backend_errors("concurrency limit"):
            await self.redis.zrem(self._key(user), lease)

    async def count(self, user: str, now: float) -> int:
        with map_backend_errors("concurrency limit"):
            return int(await self.redis.zcount(self._key(user), f"({int(now * 1000)}", "+inf"))
