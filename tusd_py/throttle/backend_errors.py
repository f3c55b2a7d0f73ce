"""Translation of the throttle backends' foreign exceptions (redis, limits)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import limits.errors
import redis.exceptions

from tusd_py.core import errors

#: Seconds a client is told to wait when the limits backend is unreachable.
RETRY_AFTER = 2.0


@contextlib.contextmanager
def map_backend_errors(what: str) -> Iterator[None]:
    """Re-raise redis/limits/socket failures as :class:`errors.StateStoreError` (503).

    ``what`` names the operation for the message (e.g. ``"rate limit"``).
    """
    try:
        yield
    except errors.TusError:
        raise
    except limits.errors.StorageError as exc:
        cause = exc.storage_error
        raise errors.StateStoreError(
            f"the {what} backend is unreachable ({type(cause).__name__}); retry later",
            retry_after=RETRY_AFTER,
        ) from exc
    except (redis.exceptions.RedisError, OSError, TimeoutError) as exc:
        raise errors.StateStoreError(
            f"the {what} backend is unreachable ({type(exc).__name__}); retry later",
            retry_after=RETRY_AFTER,
        ) from exc
