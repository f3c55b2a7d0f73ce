"""The shared ``redis.asyncio`` client (one pool per process), if configured."""

from __future__ import annotations

import redis.asyncio as aioredis

from tusd_py.config import Config


def open_redis(config: Config) -> aioredis.Redis | None:
    """A client for ``[redis] url``, or None when Redis is not configured.

    The client connects lazily; callers translate ``redis`` exceptions at
    their boundary (see ``map_redis_errors`` in the Redis backends).
    """
    if not config.redis.url:
        return None
    return aioredis.Redis.from_url(
        config.redis.url,
        socket_connect_timeout=2.0,
        socket_timeout=5.0,
        health_check_interval=10,
    )
