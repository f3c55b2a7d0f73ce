"""Throttling: tiers, per-IP request windows, per-user stream leases, stream cap.

:func:`build_throttle_guard` picks the backend: in-process when Redis is not
configured, Redis (shared by every instance) when it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tusd_py.core.config import Config
from tusd_py.throttle.base import Guard
from tusd_py.throttle.counters import InProcessCounters, RedisCounters, WindowCounters
from tusd_py.throttle.guard import ThrottleGuard
from tusd_py.throttle.leases import LeaseStore, MemoryLeaseStore, RedisLeaseStore

if TYPE_CHECKING:
    from redis.asyncio import Redis


def build_throttle_guard(
    config: Config, redis: Redis | None, *, clock: Callable[[], float] = time.time
) -> ThrottleGuard:
    """A :class:`ThrottleGuard` on ``redis`` if given, else in-process."""
    counters: WindowCounters
    leases: LeaseStore
    if redis is not None:
        store = RedisCounters(redis, url=config.redis.url, prefix=config.redis.prefix)
        counters = WindowCounters(store, clock=clock)
        leases = RedisLeaseStore(redis, config.redis.prefix)
    else:
        counters = WindowCounters(InProcessCounters(), clock=clock)
        leases = MemoryLeaseStore()
    return ThrottleGuard(config, counters, leases, clock=clock)


__all__ = ["ThrottleGuard", "build_throttle_guard"]


def build_guard(config: Config, redis: object | None, *, clock: Callable[[], float] = time.time) -> Guard:
    """The guard for ``config`` (in-process, or shared through ``redis``):
    a :class:`ThrottleGuard` (``redis`` is imported only when a client is given)."""
    if redis is None:
        return build_throttle_guard(config, None, clock=clock)
    from redis.asyncio import Redis

    return build_throttle_guard(config, redis if isinstance(redis, Redis) else None, clock=clock)
