"""The job-record store: the :class:`JobStore` seam and its SQLite implementation.

Contract (shared by every implementation, checked by tests/contract/test_job_store.py):

* :meth:`add` stores a new PENDING record; with ``dedupe`` it returns the
  existing active (PENDING/PROCESSING) job of the same file and kind instead,
  so one file never has two index jobs running at once.
* :meth:`claim` atomically moves a due PENDING job to PROCESSING, counts the
  attempt and hands the caller a lease; of concurrent claims exactly one wins.
* :meth:`renew`, :meth:`complete` and :meth:`fail` only act for the current
  lease holder (a worker whose lease expired and was re-queued lost the job).
* :meth:`reap` turns PROCESSING jobs whose lease ended before ``now`` back
  into PENDING (or FAILED when out of attempts) and returns them.
* :meth:`requeue` gives a FAILED job a fresh set of attempts.
* :meth:`stale` finds PENDING jobs due before ``before`` (their queue message
  was lost: a process died between recording and queueing, or the queue was
  down), marks them due ``now`` (so the next sweep skips them) and returns them.
* :meth:`prune` deletes at most ``limit`` finished (COMPLETED/FAILED) jobs
  last changed before ``before`` and returns them; PENDING and PROCESSING jobs
  are never pruned, whatever their age.
* :meth:`purge` deletes the jobs of one upload whose kind is in ``kinds``
  (active ones too: the upload is gone) and returns them.

Methods are synchronous (workers are threads); the HTTP layer calls them in
an executor, never on the IOLoop. The SQLite store keeps its ``jobs`` table
in the state database file (``[state] sqlite_path``), with its own connection.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from tusd_py.jobs.records import ACTIVE, FINISHED, JobRecord, JobStatus

COLUMNS = (
    "job_id", "file_id", "kind", "owner", "status", "priority", "attempts", "max_attempts",
    "error", "result", "payload", "created_at", "updated_at", "next_attempt_at",
    "lease_until", "lease_token",
)  # fmt: skip

#: Message recorded on a job whose worker stopped renewing its lease.
LOST = "worker lost (lease expired)"


class JobStore(Protocol):
    def add(self, job: JobRecord, *, dedupe: bool = False) -> JobRecord: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def for_file(self, file_id: str) -> list[JobRecord]: ...
    def claim(self, job_id: str, token: str, now: float, lease: float) -> JobRecord | None: ...
    def renew(self, job_id: str, token: str, lease_until: float) -> bool: ...
    def complete(self, job_id: str, token: str, result: dict[str, Any], now: float) -> JobRecord | None: ...
    def fail(
        self, job_id: str, token: str, error: str, now: float, retry_at: float | None
    ) -> JobRecord | None: ...
    def reap(self, now: float, retry_at: float) -> list[JobRecord]: ...
    def requeue(self, job_id: str, now: float) -> JobRecord | None: ...
    def stale(self, before: float, now: float) -> list[JobRecord]: ...
    def prune(self, before: float, limit: int) -> list[JobRecord]: ...
    def purge(self, file_id: str, kinds: tuple[str, ...]) -> list[JobRecord]: ...
    def close(self) -> None: ...


class SQLiteJobStore:
    """:class:`JobStore` on one SQLite file (WAL; safe across processes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._tx() as c:
            c.execute("PRAGMA journal_mode=WAL")
        with self._tx() as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, file_id TEXT NOT NULL,"
                " kind TEXT NOT NULL, owner TEXT, status TEXT NOT NULL, priority INTEGER,"
                " attempts INTEGER, max_attempts INTEGER, error TEXT, result TEXT, payload TEXT,"
                " created_at REAL, updated_at REAL, next_attempt_at REAL, lease_until REAL,"
                " lease_token TEXT)"
            )
            c.execute("CREATE INDEX IF NOT EXISTS jobs_file ON jobs (file_id, created_at)")
            c.execute("CREATE INDEX IF NOT EXISTS jobs_lease ON jobs (status, lease_until)")
            c.execute("CREATE INDEX IF NOT EXISTS jobs_due ON jobs (status, next_attempt_at)")
            c.execute("CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (status, updated_at)")

    @contextmanager
    def _tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if immediate:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            else:
                yield self._conn

    def _get(self, c: sqlite3.Connection, job_id: str) -> JobRecord | None:
        row = c.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else JobRecord.from_row(dict(row))

    def _put(self, c: sqlite3.Connection, job: JobRecord) -> JobRecord:
        row = job.to_row()
        marks = ",".join("?" for _ in COLUMNS)
        c.execute(
            f"INSERT OR REPLACE INTO jobs ({','.join(COLUMNS)}) VALUES ({marks})", [row[k] for k in COLUMNS]
        )
        return job

    def add(self, job: JobRecord, *, dedupe: bool = False) -> JobRecord:
        with self._tx(immediate=True) as c:
            if dedupe:
                row = c.execute(
                    "SELECT * FROM jobs WHERE file_id = ? AND kind = ? AND status IN (?, ?)"
                    " ORDER BY created_at LIMIT 1",
                    (job.file_id, job.kind, *ACTIVE),
                ).fetchone()
                if row is not None:
                    return JobRecord.from_row(dict(row))
            return self._put(c, job)

    def get(self, job_id: str) -> JobRecord | None:
        with self._tx() as c:
            return self._get(c, job_id)

    def for_file(self, file_id: str) -> list[JobRecord]:
        with self._tx() as c:
            rows = c.execute("SELECT * FROM jobs WHERE file_id = ? ORDER BY created_at, job_id", (file_id,))
            return [JobRecord.from_row(dict(r)) for r in rows.fetchall()]

    def claim(self, job_id: str, token: str, now: float, lease: float) -> JobRecord | None:
        with self._tx(immediate=True) as c:
            job = self._get(c, job_id)
            if job is None or job.status is not JobStatus.PENDING:
                return None
            if job.next_attempt_at is not None and job.next_attempt_at > now + CLAIM_SLACK:
                return None
            claimed = job.replace(
                status=JobStatus.PROCESSING,
                attempts=job.attempts + 1,
                lease_token=token,
                lease_until=now + lease,
                updated_at=now,
            )
            return self._put(c, claimed)

    def _held(self, c: sqlite3.Connection, job_id: str, token: str) -> JobRecord | None:
        job = self._get(c, job_id)
        if job is None or job.status is not JobStatus.PROCESSING or job.lease_token != token:
            return None
        return job

    def renew(self, job_id: str, token: str, lease_until: float) -> bool:
        with self._tx(immediate=True) as c:
            job = self._held(c, job_id, token)
            if job is None:
                return False
            self._put(c, job.replace(lease_until=lease_until))
            return True

    def complete(self, job_id: str, token: str, result: dict[str, Any], now: float) -> JobRecord | None:
        with self._tx(immediate=True) as c:
            job = self._held(c, job_id, token)
            if job is None:
                return None
            done = job.replace(
                status=JobStatus.COMPLETED, result=result, error=None, updated_at=now,
                lease_token=None, lease_until=None, next_attempt_at=None,
            )  # fmt: skip
            return self._put(c, done)

    def fail(
        self, job_id: str, token: str, error: str, now: float, retry_at: float | None
    ) -> JobRecord | None:
        with self._tx(immediate=True) as c:
            job = self._held(c, job_id, token)
            if job is None:
                return None
            return self._put(c, failed(job, error, now, retry_at))

    def reap(self, now: float, retry_at: float) -> list[JobRecord]:
        with self._tx(immediate=True) as c:
            rows = c.execute(
                "SELECT * FROM jobs WHERE status = ? AND lease_until < ? LIMIT 100",
                (JobStatus.PROCESSING.value, now),
            ).fetchall()
            return [self._put(c, failed(JobRecord.from_row(dict(r)), LOST, now, retry_at)) for r in rows]

    def requeue(self, job_id: str, now: float) -> JobRecord | None:
        with self._tx(immediate=True) as c:
            job = self._get(c, job_id)
            if job is None or job.status is not JobStatus.FAILED:
                return None
            return self._put(c, fresh(job, now))

    def stale(self, before: float, now: float) -> list[JobRecord]:
        with self._tx(immediate=True) as c:
            rows = c.execute(
                "SELECT * FROM jobs WHERE status = ? AND coalesce(next_attempt_at, updated_at) < ? LIMIT 100",
                (JobStatus.PENDING.value, before),
            ).fetchall()
            return [self._put(c, JobRecord.from_row(dict(r)).replace(next_attempt_at=now)) for r in rows]

    def prune(self, before: float, limit: int) -> list[JobRecord]:
        with self._tx(immediate=True) as c:
            rows = c.execute(
                "SELECT * FROM jobs WHERE status IN (?, ?) AND updated_at < ? ORDER BY updated_at LIMIT ?",
                (*FINISHED, before, limit),
            ).fetchall()
            return self._delete(c, [JobRecord.from_row(dict(r)) for r in rows])

    def purge(self, file_id: str, kinds: tuple[str, ...]) -> list[JobRecord]:
        with self._tx(immediate=True) as c:
            rows = c.execute("SELECT * FROM jobs WHERE file_id = ?", (file_id,)).fetchall()
            return self._delete(c, [j for j in map(JobRecord.from_row, map(dict, rows)) if j.kind in kinds])

    @staticmethod
    def _delete(c: sqlite3.Connection, jobs: list[JobRecord]) -> list[JobRecord]:
        c.executemany("DELETE FROM jobs WHERE job_id = ?", [(j.job_id,) for j in jobs])
        return jobs

    def close(self) -> None:
        with self._lock:
            self._conn.close()


#: A claim may start this early before ``next_attempt_at`` (scheduler granularity).
CLAIM_SLACK = 0.5


def failed(job: JobRecord, error: str, now: float, retry_at: float | None) -> JobRecord:
    """``job`` after a failed attempt: PENDING until ``retry_at``, or FAILED when
    ``retry_at`` is None or the attempts are used up."""
    dead = retry_at is None or job.attempts >= job.max_attempts
    return job.replace(
        status=JobStatus.FAILED if dead else JobStatus.PENDING,
        error=error,
        updated_at=now,
        next_attempt_at=None if dead else retry_at,
        lease_token=None,
        lease_until=None,
    )


def fresh(job: JobRecord, now: float) -> JobRecord:
    """``job`` queued again with all its attempts (``POST /process`` of a dead letter)."""
    return job.replace(
        status=JobStatus.PENDING, attempts=0, error=None, result=None, updated_at=now,
        next_attempt_at=None, lease_token=None, lease_until=None,
    )  # fmt: skip
