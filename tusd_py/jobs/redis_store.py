"""Redis :class:`~tusd_py.jobs.store.JobStore` for instances sharing one Redis.

Key layout (``P`` is ``[redis] prefix``)::

    P job:<job_id>         string  the record as JSON (columns of JobRecord.to_row)
    P jobs:file:<file_id>  zset    job ids of one upload, scored by created_at
    P jobs:leases          zset    PROCESSING job ids, scored by lease_until
    P jobs:pending         zset    PENDING job ids, scored by when due (next_attempt_at or updated_at)
    P jobs:finished        zset    COMPLETED/FAILED job ids, scored by updated_at (for pruning)

Every read-modify-write runs as an optimistic transaction (``WATCH`` the job
key, recompute with the same rules as the SQLite store, ``MULTI``/``EXEC``),
so of two concurrent claims exactly one commits. Redis errors propagate as
``redis.exceptions.RedisError`` (workers log and retry; handlers answer 503).
Records finished before ``jobs:finished`` existed are not in it and so are
not pruned by age (they still go with their upload, :meth:`RedisJobStore.purge`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis

from tusd_py.jobs.records import ACTIVE, FINISHED, JobRecord, JobStatus
from tusd_py.jobs.store import CLAIM_SLACK, LOST, failed, fresh

Change = Callable[[JobRecord], JobRecord | None]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisJobStore:
    """Job records in Redis (see module docstring for the keys)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._r = client
        self._p = prefix

    def _key(self, job_id: str) -> str:
        return f"{self._p}job:{job_id}"

    def _file_key(self, file_id: str) -> str:
        return f"{self._p}jobs:file:{file_id}"

    @property
    def _leases(self) -> str:
        return f"{self._p}jobs:leases"

    @property
    def _pending(self) -> str:
        return f"{self._p}jobs:pending"

    @property
    def _finished(self) -> str:
        return f"{self._p}jobs:finished"

    @staticmethod
    def _decode(raw: Any) -> JobRecord | None:
        return None if raw is None else JobRecord.from_row(json.loads(raw))

    def _write(self, pipe: Any, job: JobRecord) -> None:
        pipe.set(self._key(job.job_id), json.dumps(job.to_row()))
        pipe.zadd(self._file_key(job.file_id), {job.job_id: job.created_at})
        if job.status is JobStatus.PROCESSING and job.lease_until is not None:
            pipe.zadd(self._leases, {job.job_id: job.lease_until})
        else:
            pipe.zrem(self._leases, job.job_id)
        if job.status is JobStatus.PENDING:
            due = job.next_attempt_at if job.next_attempt_at is not None else job.updated_at
            pipe.zadd(self._pending, {job.job_id: due})
        else:
            pipe.zrem(self._pending, job.job_id)
        if job.status in FINISHED:
            pipe.zadd(self._finished, {job.job_id: job.updated_at})
        else:
            pipe.zrem(self._finished, job.job_id)

    def _remove(self, pipe: Any, job: JobRecord) -> None:
        pipe.delete(self._key(job.job_id))
        pipe.zrem(self._file_key(job.file_id), job.job_id)
        for index in (self._leases, self._pending, self._finished):
            pipe.zrem(index, job.job_id)

    def _delete_if(self, job_id: str, keep: Callable[[JobRecord], bool]) -> JobRecord | None:
        """Delete ``job_id`` atomically unless ``keep(record)``; the deleted record or None."""
        key = self._key(job_id)
        outcome: list[JobRecord | None] = [None]

        def run(pipe: Any) -> None:
            current = self._decode(pipe.get(key))
            outcome[0] = None if current is None or keep(current) else current
            pipe.multi()
            if outcome[0] is not None:
                self._remove(pipe, outcome[0])

        self._r.transaction(run, key)
        return outcome[0]

    def _update(self, job_id: str, change: Change) -> JobRecord | None:
        """Apply ``change`` to the stored record atomically; None = no change."""
        key = self._key(job_id)
        outcome: list[JobRecord | None] = [None]

        def run(pipe: Any) -> None:
            current = self._decode(pipe.get(key))
            outcome[0] = None if current is None else change(current)
            pipe.multi()
            if outcome[0] is not None:
                self._write(pipe, outcome[0])

        self._r.transaction(run, key)
        return outcome[0]

    def add(self, job: JobRecord, *, dedupe: bool = False) -> JobRecord:
        file_key = self._file_key(job.file_id)
        outcome: list[JobRecord] = [job]

        def run(pipe: Any) -> None:
            outcome[0] = job
            if dedupe:
                for job_id in pipe.zrange(file_key, 0, -1):
                    other = self._decode(pipe.get(self._key(_text(job_id))))
                    if other is not None and other.kind == job.kind and other.status in ACTIVE:
                        outcome[0] = other
                        break
            pipe.multi()
            if outcome[0] is job:
                self._write(pipe, job)

        self._r.transaction(run, file_key)
        return outcome[0]

    def get(self, job_id: str) -> JobRecord | None:
        return self._decode(self._r.get(self._key(job_id)))

    def for_file(self, file_id: str) -> list[JobRecord]:
        ids = [_text(i) for i in self._r.zrange(self._file_key(file_id), 0, -1)]
        if not ids:
            return []
        jobs = [self._decode(raw) for raw in self._r.mget([self._key(i) for i in ids])]
        return sorted((j for j in jobs if j is not None), key=lambda j: (j.created_at, j.job_id))

    def claim(self, job_id: str, token: str, now: float, lease: float) -> JobRecord | None:
        def change(job: JobRecord) -> JobRecord | None:
            if job.status is not JobStatus.PENDING:
                return None
            if job.next_attempt_at is not None and job.next_attempt_at > now + CLAIM_SLACK:
                return None
            return job.replace(
                status=JobStatus.PROCESSING, attempts=job.attempts + 1,
                lease_token=token, lease_until=now + lease, updated_at=now,
            )  # fmt: skip

        return self._update(job_id, change)

    def _holder(self, token: str, change: Change) -> Change:
        def guarded(job: JobRecord) -> JobRecord | None:
            if job.status is not JobStatus.PROCESSING or job.lease_token != token:
                return None
            return change(job)

        return guarded

    def renew(self, job_id: str, token: str, lease_until: float) -> bool:
        return (
            self._update(job_id, self._holder(token, lambda j: j.replace(lease_until=lease_until)))
            is not None
        )

    def complete(self, job_id: str, token: str, result: dict[str, Any], now: float) -> JobRecord | None:
        def change(job: JobRecord) -> JobRecord:
            return job.replace(
                status=JobStatus.COMPLETED, result=result, error=None, updated_at=now,
                lease_token=None, lease_until=None, next_attempt_at=None,
            )  # fmt: skip

        return self._update(job_id, self._holder(token, change))

    def fail(
        self, job_id: str, token: str, error: str, now: float, retry_at: float | None
    ) -> JobRecord | None:
        return self._update(job_id, self._holder(token, lambda j: failed(j, error, now, retry_at)))

    def reap(self, now: float, retry_at: float) -> list[JobRecord]:
        reaped = []
        for raw in self._r.zrangebyscore(self._leases, "-inf", f"({now}", start=0, num=100):

            def change(job: JobRecord) -> JobRecord | None:
                if job.status is not JobStatus.PROCESSING or (job.lease_until or 0) >= now:
                    return None
                return failed(job, LOST, now, retry_at)

            job = self._update(_text(raw), change)
            if job is not None:
                reaped.append(job)
        return reaped

    def requeue(self, job_id: str, now: float) -> JobRecord | None:
        return self._update(job_id, lambda j: fresh(j, now) if j.status is JobStatus.FAILED else None)

    def stale(self, before: float, now: float) -> list[JobRecord]:
        found = []
        for raw in self._r.zrangebyscore(self._pending, "-inf", f"({before}", start=0, num=100):

            def change(job: JobRecord) -> JobRecord | None:
                due = job.next_attempt_at if job.next_attempt_at is not None else job.updated_at
                if job.status is not JobStatus.PENDING or due >= before:
                    return None
                return job.replace(next_attempt_at=now)

            job = self._update(_text(raw), change)
            if job is not None:
                found.append(job)
        return found

    def prune(self, before: float, limit: int) -> list[JobRecord]:
        pruned = []
        ids = self._r.zrangebyscore(self._finished, "-inf", f"({before}", start=0, num=limit)
        for raw in ids:
            job_id = _text(raw)
            job = self._delete_if(job_id, lambda j: j.status not in FINISHED or j.updated_at >= before)
            if job is not None:
                pruned.append(job)
            elif self._r.get(self._key(job_id)) is None:
                self._r.zrem(self._finished, job_id)  # a record deleted elsewhere
        return pruned

    def purge(self, file_id: str, kinds: tuple[str, ...]) -> list[JobRecord]:
        purged = []
        for raw in self._r.zrange(self._file_key(file_id), 0, -1):
            job = self._delete_if(_text(raw), lambda j: j.kind not in kinds)
            if job is not None:
                purged.append(job)
        return purged

    def close(self) -> None:
        self._r.close()
