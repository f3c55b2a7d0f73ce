"""The queue: a huey instance carrying job ids to consumers.

One host: ``SqliteHuey`` in the state database file (``[state] sqlite_path``,
default ``<data_dir>/state.db``; huey's own ``task``/``schedule``/``kv`` tables); with ``[redis] url``:
``PriorityRedisHuey`` whose keys use ``[redis] prefix`` (``P jobs:queue``,
``P jobs:schedule``), so every instance and ``tusd-py worker`` of a deployment
share one queue. Messages carry only a job id and a priority (premium before
basic); the truth about a job is its record in the :class:`JobStore`. huey
removes a message when a consumer takes it, so a consumer killed mid-job loses
the message: the reaper (:mod:`tusd_py.jobs.consumer`) re-queues the job from
its expired lease. Delayed retries use huey's schedule.

huey is imported by :func:`build_huey`, and without Redis configured it is
imported with ``redis`` held back: ``huey.storage`` imports ``redis`` whenever
it is installed (~8 MiB of RSS), which a SQLite-only server never uses (see
:func:`load_huey`).
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tusd_py.core.config import Config

if TYPE_CHECKING:
    from huey.api import Huey  # type: ignore[import-untyped]

#: The one huey task name; its argument is a job id.
TASK_NAME = "tusd_py.run_job"


def load_huey(*, with_redis: bool) -> Any:
    """The ``huey`` package, imported on first call.

    Without ``with_redis``, and when nothing imported ``redis`` yet, huey is
    imported with ``redis`` held back (``sys.modules["redis"] = None`` for the
    duration of the import: huey's optional ``from redis import ...`` then
    fails as if redis were not installed). With ``with_redis``, a huey imported
    that way gets the four names its Redis storage needs, bound to what its own
    import would have bound, so a process may build a Redis huey after a
    SQLite one (the test suite does).
    """
    if "huey" not in sys.modules and not with_redis and "redis" not in sys.modules:
        sys.modules["redis"] = None  # type: ignore[assignment]
        try:
            import huey  # type: ignore[import-untyped]
        finally:
            if "redis" in sys.modules and sys.modules["redis"] is None:
                del sys.modules["redis"]
    import huey
    import huey.storage  # type: ignore[import-untyped]

    if with_redis and huey.storage.Redis is None:
        import redis
        import redis.exceptions

        huey.storage.ConnectionPool = redis.ConnectionPool
        huey.storage.Redis = redis.Redis
        huey.storage.RedisStorage.redis_client = redis.Redis
        huey.storage.ConnectionError = redis.exceptions.ConnectionError
        huey.storage.TimeoutError = redis.exceptions.TimeoutError
    return huey


def build_huey(config: Config) -> Huey:
    """The deployment's huey: Redis when configured, else the SQLite state database."""
    huey_module = load_huey(with_redis=bool(config.redis.url))
    if config.redis.url:
        huey: Huey = huey_module.PriorityRedisHuey(
            "jobs", url=config.redis.url, results=False, utc=True, blocking=True, read_timeout=0.25
        )
        prefix = config.redis.prefix
        storage: Any = huey.storage
        storage.queue_key = f"{prefix}jobs:queue"
        storage.schedule_key = f"{prefix}jobs:schedule"
        storage.result_key = f"{prefix}jobs:results"
        return huey
    config.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return huey_module.SqliteHuey(
        "jobs", filename=str(config.sqlite_path), results=False, utc=True, timeout=30
    )


class JobQueue:
    """Pushes job ids onto huey and routes dequeued ones to ``handler``.

    ``handler(job_id)`` runs in a consumer thread; it must not raise for
    ordinary job failures (those are recorded on the job).
    """

    def __init__(self, huey: Huey, handler: Callable[[str], None]) -> None:
        self.huey = huey
        self._task = huey.task(name=TASK_NAME)(handler)

    def push(self, job_id: str, priority: int = 0, delay: float = 0.0) -> None:
        """Queue ``job_id`` now, or after ``delay`` seconds."""
        if delay > 0:
            eta = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(seconds=delay)
            self.huey.add_schedule(self._task.s(job_id, priority=priority, eta=eta))
        else:
            self.huey.enqueue(self._task.s(job_id, priority=priority))

    def pending(self) -> int:
        """Messages waiting in the queue (not counting scheduled ones)."""
        return int(self.huey.pending_count())

    def close(self) -> None:
        """Release the storage's connections."""
        storage: Any = self.huey.storage
        pool = getattr(storage, "pool", None)  # Redis: huey owns the pool, the client does not
        if pool is not None:
            pool.disconnect()
        conn = getattr(storage, "conn", None)
        if conn is not None and hasattr(conn, "close"):
            conn.close()
