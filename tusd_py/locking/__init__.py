"""Per-upload locks: the :class:`Locker` seam and its implementations."""

from __future__ import annotations

from typing import Any

from tusd_py.core.config import Config
from tusd_py.locking.base import Lock, Locker
from tusd_py.locking.memory import MemoryLocker


def build_locker(config: Config, redis: Any | None) -> Locker:
    """In-process locks by default; Redis locks when Redis is configured;
    host-local file locks for ``--workers N`` without Redis."""
    if redis is not None:
        from tusd_py.locking.redis import RedisLocker

        return RedisLocker(
            redis,
            config.redis.prefix,
            ttl=config.redis.lock_ttl,
            mark_dir=config.data_dir / "locks" / "holders",
        )
    if config.server.workers > 1:
        from tusd_py.locking.file import FileLocker

        return FileLocker(config.data_dir / "locks")
    return MemoryLocker()


__all__ = ["Lock", "Locker", "build_locker"]
