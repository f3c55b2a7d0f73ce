"""Translation of the throttle backends' foreign exceptions (redis, limits)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from tusd_py.core import errors
from tusd_py.state.redis_conn import loaded_redis_errors

#: Seconds a client is told to wait when the limits backend is unreachable.
RETRY_AFTER = 2.0


def _limits_storage_errors() -> tuple[type[Exception], ...]:
    """``(limits.errors.StorageError,)`` once ``limits`` is loaded, else ``()``."""
    module = sys.modules.get("limits.errors")
    return () if module is None else (module.StorageError,)


def _unreachable_errors() -> tuple[type[Exception], ...]:
    """Redis's errors (once ``redis`` is loaded) and socket failures."""
    return (*loaded_redis_errors(), OSError, TimeoutError)


@contextlib.contextmanager
def map_backend_errors(what: str) -> Iterator[None]:
    """Re-raise redis/limits/socket failures as :class:`errors.StateStoreError` (503).

    ``what`` names the operation for the message (e.g. ``"rate limit"``).
    ``limits`` and ``redis`` are not imported here: their errors exist only
    once the Redis backends loaded them.
    """
    try:
        yield
    except errors.TusError:
        raise
    except _limits_storage_errors() as exc:
        cause = getattr(exc, "storage_error", exc)
        raise errors.StateStoreError(
            f"the {what} backend is unreachable ({type(cause).__name__}); retry later",
            retry_after=RETRY_AFTER,
        ) from exc
    except _unreachable_errors() as exc:
        raise errors.StateStoreError(
            f"the {what} backend is unreachable ({type(exc).__name__}); retry later",
            retry_after=RETRY_AFTER,
        ) from exc
