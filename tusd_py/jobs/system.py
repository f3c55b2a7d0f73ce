"""``JobSystem``: the job queue of one process, wired from a :class:`Config`.

It bundles the job store (SQLite in the state database, or Redis), the huey
queue, the :class:`Runner` with the built-in kinds (``index``, ``sha256``,
``webhook``), the optional in-process :class:`Consumer` and the
:class:`JobsSink` that turns upload events into jobs (auto-index, webhooks).

Writes caused by events (webhook deliveries, auto-index, forgetting a
terminated upload) go through the :class:`~tusd_py.jobs.outbox.Outbox`, so a
job store that is down at event time delays them instead of losing them.
Finished jobs are pruned ``[jobs] retention`` seconds after they ended (by the
consumer's scheduler, :meth:`JobSystem.prune`), with the rows table an
``index`` job published; a terminated or expired upload's jobs and rows go at
once.

Async methods are for the IOLoop: they run the store's synchronous calls in
the system's own small thread pool. Listeners (:class:`JobListener`) hear
every job state change; webhooks are one, live events can be another
(:meth:`add_listener`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from tusd_py.core import errors
from tusd_py.core.composer import Composer
from tusd_py.core.config import Config
from tusd_py.core.models import ConcatKind, UploadInfo
from tusd_py.events.hooks import webhooks
from tusd_py.jobs.consumer import Consumer
from tusd_py.jobs.digest import sha256_job
from tusd_py.jobs.index import index_job, tabular_format
from tusd_py.jobs.outbox import Call, JobWrite, Outbox, OutboxCollector
from tusd_py.jobs.queue import JobQueue, build_huey
from tusd_py.jobs.records import USER_KINDS, JobRecord, JobStatus, new_job_id, priority_of
from tusd_py.jobs.rows import RowsDB
from tusd_py.jobs.runner import JobFn, JobListener, PermanentJobError, Runner, backend_errors
from tusd_py.jobs.source import UploadSource
from tusd_py.jobs.store import JobStore, SQLiteJobStore

log = logging.getLogger("tusd_py.jobs")
T = TypeVar("T")

#: Kinds whose changes make ``job.*`` webhooks (not the webhook deliveries themselves).
NOTIFIED_KINDS = ("index", "sha256")
#: Jobs deleted per store call, and store calls per sweep (bounded work per pass).
PRUNE_BATCH = 500
PRUNE_BATCHES = 20
#: Seconds between two prune sweeps of a consumer (the first runs when it starts).
PRUNE_EVERY = 3600.0


def build_job_store(config: Config) -> JobStore:
    """Redis when ``[redis] url`` is set, else the ``jobs`` table of the state database."""
    if config.redis.url:
        import redis

        from tusd_py.jobs.redis_store import RedisJobStore

        client = redis.Redis.from_url(config.redis.url, socket_timeout=10.0, socket_connect_timeout=5.0)
        return RedisJobStore(client, config.redis.prefix)
    return SQLiteJobStore(config.sqlite_path)


class JobSystem:
    """Store, queue, runner and (optionally) consumer of one process."""

    def __init__(
        self,
        config: Config,
        composer: Composer,
        *,
        store: JobStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.composer = composer
        self.clock = clock
        self.store = store or build_job_store(config)
        self.rows = RowsDB(config.data_dir / "rows.db")
        self.listeners: list[JobListener] = []
        self.queue = JobQueue(build_huey(config), self._run)
        self.source: UploadSource | None = None
        self.consumer: Consumer | None = None
        self.outbox = Outbox()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tusd-jobs-io")
        j = config.jobs
        self.runner = Runner(
            store=self.store,
            kinds=self._kinds(),
            push=self.queue.push,
            listener=self,
            lease=j.visibility_timeout,
            retry_delay=j.retry_delay,
            max_retry_delay=j.max_retry_delay,
            clock=clock,
        )

    def _kinds(self) -> dict[str, JobFn]:
        return {
            "index": lambda job: index_job(job, self._source(), self.rows, self.config.jobs.strict),
            "sha256": lambda job: sha256_job(job, self._source()),
            webhooks.KIND: lambda job: webhooks.deliver(job, self.config.hooks, self.clock),
        }

    def _source(self) -> UploadSource:
        if self.source is None:
            raise PermanentJobError("this process has no event loop bound for reading uploads")
        return self.source

    def _run(self, job_id: str) -> None:
        self.runner.run(job_id)

    # --- listeners -----------------------------------------------------------

    def add_listener(self, listener: JobListener) -> None:
        """Hear every job state change (called from worker threads; must not block long)."""
        self.listeners.append(listener)

    def job_changed(self, job: JobRecord) -> None:
        if job.kind in NOTIFIED_KINDS and job.status in (JobStatus.COMPLETED, JobStatus.FAILED):
            event = "job.completed" if job.status is JobStatus.COMPLETED else "job.failed"
            self.publish(event, webhooks.job_data(job), job.owner)
        for listener in self.listeners:
            try:
                listener.job_changed(job)
            except Exception:
                log.exception("job listener %r failed", listener)

    # --- submitting (synchronous: worker or pool threads) --------------------

    def submit(
        self, info: UploadInfo, kind: str, tier: str = "basic", payload: dict[str, Any] | None = None
    ) -> JobRecord:
        """Queue ``kind`` for ``info``: the file's active job of that kind if there is
        one, else its last dead letter queued again, else a new job."""
        now = self.clock()
        job = JobRecord(
            job_id=new_job_id(), file_id=info.id, kind=kind, owner=info.owner,
            priority=priority_of(tier), max_attempts=self.config.jobs.max_attempts,
            payload=payload or {}, created_at=now, updated_at=now,
        )  # fmt: skip
        previous = [j for j in self.store.for_file(info.id) if j.kind == kind]
        if previous and previous[-1].status is JobStatus.FAILED:
            again = self.store.requeue(previous[-1].job_id, now)
            if again is not None:
                self.queue.push(again.job_id, max(again.priority, job.priority), 0.0)
                return again
        stored = self.store.add(job, dedupe=True)
        if stored is job:
            self.queue.push(job.job_id, job.priority, 0.0)
        return stored

    def publish(self, event_type: str, data: dict[str, Any], owner: str) -> list[JobRecord]:
        """Queue one webhook delivery per ``[hooks] url`` for a new event."""
        if not self.config.hooks.url:
            return []
        jobs = webhooks.webhook_jobs(
            self.config.hooks, event_type, data, owner, self.clock(), self.config.jobs.max_attempts
        )
        for job in jobs:
            self.outbox.write(JobWrite(job, self.store, self.queue.push))
        return jobs

    def on_upload_event(self, event: str, info: UploadInfo, detail: str | None) -> None:
        """Upload lifecycle → jobs (runs in the pool, see :class:`JobsSink`): webhooks,
        and an ``index`` job when the declared or sniffed type is CSV/NDJSON (a
        name like ``x.csv`` alone does not queue one; ``POST /process`` accepts it;
        partial uploads of a concatenation are not indexed, their final is).
        A terminated or expired upload's jobs (not its webhook deliveries) and
        rows are dropped. Store writes go through the outbox."""
        if event in webhooks.EVENT_TYPES:
            self.publish(event, webhooks.upload_data(info, detail), info.owner)
        tabular = info.concat is not ConcatKind.PARTIAL and tabular_format(info, by_name=False)
        if event == "upload.finished" and self.config.jobs.auto_index and tabular:
            # queued at the priority of the uploader's tier, recorded when the upload was created
            self.outbox.write(Call(f"index job of {info.id}", self.submit, info, "index", info.tier))
        if event in ("upload.terminated", "upload.expired"):
            self.outbox.write(Call(f"forgetting the jobs of {info.id}", self.forget, info.id))

    def forget(self, file_id: str) -> list[JobRecord]:
        """Delete the ``index``/``sha256`` jobs and the rows of a removed upload."""
        self.rows.drop(file_id)
        return self.store.purge(file_id, USER_KINDS)

    def prune(self, now: float | None = None) -> int:
        """Delete jobs finished more than ``[jobs] retention`` s before ``now`` (at most
        ``PRUNE_BATCH * PRUNE_BATCHES`` per call), and the rows tables the pruned
        ``index`` jobs published; returns how many jobs went."""
        before = (self.clock() if now is None else now) - self.config.jobs.retention
        total = 0
        for _ in range(PRUNE_BATCHES):
            pruned = self.store.prune(before, PRUNE_BATCH)
            for job in pruned:
                if job.kind == "index":
                    self.rows.drop(job.file_id, job.job_id)
            total += len(pruned)
            if len(pruned) < PRUNE_BATCH:
                break
        if total:
            log.info("pruned %d finished jobs", total, extra={"event": "JobsPruned", "count": total})
        return total

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Export the outbox's series (see :mod:`tusd_py.jobs.outbox`) in ``registry``."""
        registry.register(OutboxCollector(self.outbox))

    # --- the IOLoop side -----------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a synchronous store call off the IOLoop; a backend failure (sqlite3,
        redis) becomes :class:`errors.StateStoreError` (503), as in the state stores."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))
        except backend_errors() as exc:
            raise errors.StateStoreError(
                f"the job store is unavailable ({type(exc).__name__}: {exc})"
            ) from None

    def background(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn`` in the pool, logging (not raising) its failure."""

        def guarded() -> None:
            try:
                fn(*args)
            except backend_errors() as exc:
                log.warning(
                    "job store unavailable, event not queued (%s: %s)", type(exc).__name__, exc,
                    extra={"event": "JobStoreUnavailable"},
                )  # fmt: skip
            except Exception:
                log.exception("queueing jobs for an event failed")

        self._pool.submit(guarded)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Let job kinds read uploads through coroutines run on ``loop``."""
        self.source = UploadSource(self.composer, loop)

    def start_consumer(self, threads: int) -> None:
        """Run ``threads`` consumer threads in this process (call on the loop's thread)."""
        self.bind(asyncio.get_running_loop())
        if self.consumer is None and threads > 0:
            self.consumer = Consumer(
                self.queue.huey, threads, self.runner.reap, self.config.jobs.visibility_timeout / 4,
                sweep=self.prune, sweep_every=PRUNE_EVERY,
            )  # fmt: skip
            self.consumer.start()

    async def stop_consumer(self, timeout: float = 30.0) -> None:
        """Stop the consumer, letting running jobs end (they read through the loop)."""
        consumer, self.consumer = self.consumer, None
        if consumer is not None:
            await asyncio.get_running_loop().run_in_executor(None, consumer.stop, timeout)

    async def aclose(self) -> None:
        """Stop the consumer, finish queued event work, flush the outbox (bounded
        by :data:`~tusd_py.jobs.outbox.FLUSH_TIMEOUT`), close the backends."""
        await self.stop_consumer()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._pool.shutdown)
        await loop.run_in_executor(None, self.outbox.close)
        self.queue.close()
        self.store.close()


class JobsSink:
    """The :class:`~tusd_py.core.events.EventSink` feeding the job system; never blocks."""

    def __init__(self, system: JobSystem) -> None:
        self.system = system
        #: What it acts on (other events never reach it: see ``core.events.MultiSink``):
        #: completion (auto-index), removal (forgetting jobs), and with webhooks
        #: configured every upload event they announce.
        webhook_events = frozenset(e for e in webhooks.EVENT_TYPES if e.startswith("upload."))
        self.event_kinds = frozenset({"upload.finished", "upload.terminated", "upload.expired"}) | (
            webhook_events if system.config.hooks.url else frozenset()
        )

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        if event == "upload.progress":
            return
        self.system.background(self.system.on_upload_event, event, info, detail)
