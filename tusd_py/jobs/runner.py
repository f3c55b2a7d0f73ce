"""Runs one job: claim, keep the lease alive, execute its kind, record the outcome.

:meth:`Runner.run` is what a consumer thread calls with a dequeued job id. A
job not claimable (already running elsewhere, finished, not due yet) is
skipped: duplicate messages are harmless (one arriving before the job's
backoff ended is pushed again for the rest of the wait). While a job runs, a timer thread
renews its lease every third of the visibility timeout; a worker that dies
stops renewing and the reaper re-queues the job. A kind raising
:class:`PermanentJobError` fails at once (FAILED, no retry); any other
exception is retried after exponential backoff until ``max_attempts``.
Every state change is handed to the :class:`JobListener`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tusd_py.jobs.records import JobRecord, JobStatus, backoff
from tusd_py.jobs.store import JobStore
from tusd_py.state.redis_conn import loaded_redis_errors

log = logging.getLogger("tusd_py.jobs")


def backend_errors() -> tuple[type[Exception], ...]:
    """Failures of the job store or queue backend (an outage, not a bug): sqlite3's,
    socket timeouts and refusals, and Redis's once ``redis`` is loaded (an
    ``except`` clause naming this does not import it; see
    :func:`~tusd_py.state.redis_conn.loaded_redis_errors`)."""
    return (sqlite3.Error, *loaded_redis_errors(), ConnectionError, TimeoutError)


#: A PENDING job this many visibility timeouts past due lost its queue message.
STALE_AFTER = 4


class PermanentJobError(Exception):
    """A failure retrying cannot fix (missing upload, strict index of bad data)."""


class JobListener(Protocol):
    """Told about each job state change (webhooks, and the seam for live events)."""

    def job_changed(self, job: JobRecord) -> None: ...


#: A job kind: input record → result document (runs in a worker thread).
JobFn = Callable[[JobRecord], dict[str, Any]]
#: Queues a job id: ``push(job_id, priority, delay)``.
Push = Callable[[str, int, float], None]


class Runner:
    """Executes jobs of the kinds in ``kinds`` (see module docstring)."""

    def __init__(
        self,
        *,
        store: JobStore,
        kinds: Mapping[str, JobFn],
        push: Push,
        listener: JobListener,
        lease: float,
        retry_delay: float,
        max_retry_delay: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.kinds = kinds
        self.push = push
        self.listener = listener
        self.lease = lease
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.clock = clock

    def run(self, job_id: str) -> None:
        """Run ``job_id`` if it can be claimed; a backend outage is logged, not raised
        (the lease or the stale sweep brings the job back)."""
        try:
            self._run(job_id)
        except backend_errors() as exc:
            log.warning(
                "job %s interrupted: job store unavailable (%s: %s); it runs again later",
                job_id, type(exc).__name__, exc, extra={"event": "JobStoreUnavailable", "job_id": job_id},
            )  # fmt: skip

    def _run(self, job_id: str) -> None:
        token = uuid.uuid4().hex
        job = self.store.claim(job_id, token, self.clock(), self.lease)
        if job is None:
            self._push_if_early(job_id)
            return
        self.listener.job_changed(job)
        stop = threading.Event()
        keeper = threading.Thread(target=self._keep_lease, args=(job_id, token, stop), daemon=True)
        keeper.start()
        try:
            outcome = self._execute(job, token)
        finally:
            stop.set()
            keeper.join(timeout=5)
        if outcome is None:
            log.warning("job %s lost its lease before it ended", job_id)
            return
        if outcome.status is JobStatus.PENDING and outcome.next_attempt_at is not None:
            self.push(job_id, outcome.priority, max(0.0, outcome.next_attempt_at - self.clock()))
        self.listener.job_changed(outcome)

    def _push_if_early(self, job_id: str) -> None:
        """A message that came before its job's backoff ended (the queue's schedule
        may round times) is pushed again for the rest of the wait."""
        job = self.store.get(job_id)
        now = self.clock()
        if job is not None and job.status is JobStatus.PENDING and (job.next_attempt_at or 0) > now:
            self.push(job_id, job.priority, job.next_attempt_at - now)  # type: ignore[operator]

    def _execute(self, job: JobRecord, token: str) -> JobRecord | None:
        fn = self.kinds.get(job.kind)
        try:
            if fn is None:
                raise PermanentJobError(f"unknown job kind {job.kind!r}")
            result = fn(job)
        except PermanentJobError as exc:
            log.info("job %s failed: %s", job.job_id, exc, extra={"event": "JobFailed", "job_id": job.job_id})
            return self.store.fail(job.job_id, token, str(exc), self.clock(), None)
        except Exception as exc:
            delay = backoff(job.attempts, self.retry_delay, self.max_retry_delay)
            message = f"{type(exc).__name__}: {exc}"
            log.info(
                "job %s attempt %d failed (%s); retry in %.1fs",
                job.job_id, job.attempts, message, delay,
                extra={"event": "JobAttemptFailed", "job_id": job.job_id},
            )  # fmt: skip
            now = self.clock()
            return self.store.fail(job.job_id, token, message, now, now + delay)
        return self.store.complete(job.job_id, token, result, self.clock())

    def _keep_lease(self, job_id: str, token: str, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            try:
                if not self.store.renew(job_id, token, self.clock() + self.lease):
                    return
            except backend_errors() as exc:
                log.warning("renewing the lease of job %s failed: %s", job_id, exc)

    def reap(self) -> list[JobRecord]:
        """Re-queue jobs whose worker died, and PENDING jobs whose message was
        lost; returns the records changed."""
        now = self.clock()
        reaped = self.store.reap(now, now)
        for job in reaped:
            if job.status is JobStatus.PENDING:
                self.push(job.job_id, job.priority, 0.0)
            self.listener.job_changed(job)
        for job in self.store.stale(now - STALE_AFTER * self.lease, now):
            self.push(job.job_id, job.priority, 0.0)
        return reaped
