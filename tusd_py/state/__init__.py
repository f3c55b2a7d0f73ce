"""Upload-record stores: the :class:`StateStore` seam and its implementations."""

from __future__ import annotations

from typing import Any

from tusd_py.core.config import Config
from tusd_py.state.base import StateStore


async def build_state(config: Config, redis: Any | None) -> StateStore:
    """SQLite by default; Redis when ``[redis] url`` is configured."""
    if redis is not None:
        from tusd_py.state.redis import RedisStateStore

        return RedisStateStore(redis, config.redis.prefix)
    from tusd_py.state.sqlite import SQLiteStateStore

    return await SQLiteStateStore.open(config.sqlite_path)


__all__ = ["StateStore", "build_state"]
