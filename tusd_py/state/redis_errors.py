"""Translation of ``redis`` exceptions at the boundary of the Redis backends.

Every call into ``redis.asyncio`` made by a backend runs inside
:func:`map_redis_errors`, so callers only ever see
:class:`tusd_py.core.errors.StateStoreError` (503 with ``Retry-After``) when Redis
is unreachable, times out or answers with an error. Nothing is cached across
a failure: the next call goes through the client's pool again, which
reconnects by itself once Redis is back.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import redis.exceptions

from tusd_py.core import errors

log = logging.getLogger("tusd_py.app")

#: Seconds a client is told to wait (Retry-After) when Redis is unreachable.
RETRY_AFTER = 2.0

#: Exceptions a Redis call may raise besides ``RedisError`` (socket errors that
#: escape the client, and timeouts raised by asyncio around a read).
REDIS_FAILURES: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError, TimeoutError)


@contextlib.contextmanager
def map_redis_errors(operation: str) -> Iterator[None]:
    """Translate Redis failures during ``operation`` into :class:`errors.StateStoreError`."""
    try:
        yield
    except REDIS_FAILURES as exc:
        # The detail (addresses, server messages) goes to the log, not to clients.
        log.warning("Redis failed during %s: %s: %s", operation, type(exc).__name__, exc)
        raise errors.StateStoreError(
            f"the state store is unavailable ({operation}); retry later", retry_after=RETRY_AFTER
        ) from exc


def text(value: object) -> str | None:
    """A Redis reply as text (the shared client does not decode responses)."""
    if value is None:
        return None
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
