"""The shared ``redis.asyncio`` client (one pool per process), if configured.

tusd-py imports ``redis`` only when a client is opened; code that only
*catches* Redis errors names :func:`loaded_redis_errors` in its ``except``
clause instead of importing ``redis.exceptions``. (huey's storage module
still imports ``redis`` whenever it is installed, so a server with the job
queue has it loaded anyway: ~8 MiB of RSS.)
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from tusd_py.core.config import Config

if TYPE_CHECKING:
    import redis.asyncio as aioredis


def loaded_redis_errors() -> tuple[type[Exception], ...]:
    """``(redis.exceptions.RedisError,)`` once ``redis`` is imported, else ``()``.

    No Redis error can exist before the module is, so an ``except`` clause
    naming this catches every one without importing ``redis`` itself.
    """
    module = sys.modules.get("redis.exceptions")
    if module is None:
        return ()
    return (module.RedisError,)


def open_redis(config: Config) -> aioredis.Redis | None:
    """A client for ``[redis] url``, or None when Redis is not configured.

    The client connects lazily; callers translate ``redis`` exceptions at
    their boundary (see ``map_redis_errors`` in the Redis backends).
    A command that fails with a connection error is retried once on a fresh
    connection: after a Redis restart, pooled connections are dead and each
    would otherwise fail one request (an answer lost after execution makes
    the retry see its own effect, which the Lua scripts tolerate or report).

    ``[redis] timeout`` bounds connecting and every read (the health-check
    PING included), and a timeout is *not* retried: a Redis that accepts
    connections but does not answer (frozen, overloaded, SIGSTOPped) fails
    one command within ``timeout`` seconds, so the request gets its 503 with
    ``Retry-After`` then instead of after several timeouts in a row.
    """
    if not config.redis.url:
        return None
    import redis.asyncio as aioredis
    import redis.exceptions
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis.from_url(
        config.redis.url,
        socket_connect_timeout=config.redis.timeout,
        socket_timeout=config.redis.timeout,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.exceptions.ConnectionError,)),
        retry_on_error=[redis.exceptions.ConnectionError],
    )
