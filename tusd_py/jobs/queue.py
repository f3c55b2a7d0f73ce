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
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from huey import PriorityRedisHuey, SqliteHuey  # type: ignore[import-untyped]
from huey.api import Huey  # type: ignore[import-untyped]

from tusd_py.core.config import Config

#: The one huey task name; its argument is a job id.
TASK_NAME = "tusd_py.run_job"


def build_huey(config: Config) -> Huey:
    """The deployment's huey: Redis when configured, else the SQLite state database."""
    if config.redis.url:
        huey: Huey = PriorityRedisHuey(
            "jobs", url=config.redis.url, results=False, utc=True, blocking=True, read_timeout=0.25
        )
        prefix = config.redis.prefix
        storage: Any = huey.storage
        storage.queue_key = f"{prefix}jobs:queue"
        storage.schedule_key = f"{prefix}jobs:schedule"
        storage.result_key = f"{prefix}jobs:results"
        return huey
    config.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("jobs", filename=str(config.sqlite_path), results=False, utc=True, timeout=30)


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
