"""Contract of :class:`tusd_py.jobs.store.JobStore`, run against the SQLite
store (a real file) and the Redis store (a real redis-server)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tusd_py.jobs.records import JobRecord, JobStatus, backoff
from tusd_py.jobs.redis_store import RedisJobStore
from tusd_py.jobs.store import LOST, JobStore, SQLiteJobStore


@pytest.fixture(params=["sqlite", "redis"])
def jobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    store: JobStore
    if request.param == "sqlite":
        store = SQLiteJobStore(tmp_path / "state.db")
    else:
        client = redis.Redis.from_url(str(request.getfixturevalue("redis_url")))
        store = RedisJobStore(client, f"test-{uuid.uuid4().hex[:8]}:")
    yield store
    store.close()


def job(file_id: str = "f1", kind: str = "index", created: float = 1.0, attempts: int = 3) -> JobRecord:
    return JobRecord(
        job_id=uuid.uuid4().hex, file_id=file_id, kind=kind, owner="alice",
        max_attempts=attempts, created_at=created, updated_at=created,
    )  # fmt: skip


def test_add_get_and_list_by_file(jobs: JobStore) -> None:
    a, b, other = job(created=1.0), job(kind="sha256", created=2.0), job(file_id="f2")
    for j in (a, b, other):
        assert jobs.add(j) == j
    assert jobs.get(a.job_id) == a
    assert jobs.get("0" * 32) is None
    assert [j.job_id for j in jobs.for_file("f1")] == [a.job_id, b.job_id]
    assert jobs.for_file("nothing") == []


def test_dedupe_returns_the_active_job_of_the_same_kind(jobs: JobStore) -> None:
    first = jobs.add(job(), dedupe=True)
    assert jobs.add(job(created=5.0), dedupe=True) == first
    assert jobs.add(job(kind="sha256"), dedupe=True) != first
    claimed = jobs.claim(first.job_id, "t", now=10.0, lease=5.0)
    assert claimed is not None
    assert jobs.complete(first.job_id, "t", {"rows": 1}, now=11.0) is not None
    assert jobs.add(job(created=12.0), dedupe=True).job_id != first.job_id


def test_claim_is_exclusive_under_concurrency(jobs: JobStore) -> None:
    j = jobs.add(job())
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def claim(token: str) -> None:
        barrier.wait(timeout=10)
        if jobs.claim(j.job_id, token, now=10.0, lease=30.0) is not None:
            winners.append(token)

    threads = [threading.Thread(target=claim, args=(f"t{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(winners) == 1
    got = jobs.get(j.job_id)
    assert got is not None and got.status is JobStatus.PROCESSING and got.attempts == 1
    assert got.lease_token == winners[0] and got.lease_until == 40.0


def test_only_the_lease_holder_renews_completes_or_fails(jobs: JobStore) -> None:
    j = jobs.add(job())
    assert jobs.claim(j.job_id, "mine", now=10.0, lease=5.0) is not None
    assert jobs.claim(j.job_id, "other", now=10.0, lease=5.0) is None
    assert not jobs.renew(j.job_id, "other", 99.0)
    assert jobs.renew(j.job_id, "mine", 20.0)
    assert jobs.complete(j.job_id, "other", {}, now=11.0) is None
    assert jobs.fail(j.job_id, "other", "x", now=11.0, retry_at=12.0) is None
    done = jobs.complete(j.job_id, "mine", {"rows": 3}, now=12.0)
    assert done is not None and done.status is JobStatus.COMPLETED and done.result == {"rows": 3}
    assert jobs.get(j.job_id) == done


def test_failures_back_off_then_dead_letter_then_requeue(jobs: JobStore) -> None:
    j = jobs.add(job(attempts=2))
    assert jobs.claim(j.job_id, "a", now=10.0, lease=5.0) is not None
    retry = jobs.fail(j.job_id, "a", "boom", now=11.0, retry_at=13.0)
    assert retry is not None and retry.status is JobStatus.PENDING and retry.next_attempt_at == 13.0
    assert jobs.claim(j.job_id, "b", now=11.0, lease=5.0) is None, "not due before its backoff"
    assert jobs.claim(j.job_id, "b", now=13.0, lease=5.0) is not None
    dead = jobs.fail(j.job_id, "b", "boom again", now=14.0, retry_at=20.0)
    assert (
        dead is not None
        and dead.status is JobStatus.FAILED
        and dead.attempts == 2
        and dead.error == "boom again"
    )
    assert jobs.claim(j.job_id, "c", now=30.0, lease=5.0) is None
    again = jobs.requeue(j.job_id, now=40.0)
    assert (
        again is not None
        and again.status is JobStatus.PENDING
        and again.attempts == 0
        and again.error is None
    )
    assert jobs.requeue(j.job_id, now=41.0) is None, "only dead letters are re-queued"


def test_permanent_failure_skips_retries(jobs: JobStore) -> None:
    j = jobs.add(job(attempts=5))
    jobs.claim(j.job_id, "a", now=1.0, lease=5.0)
    dead = jobs.fail(j.job_id, "a", "bad input", now=2.0, retry_at=None)
    assert dead is not None and dead.status is JobStatus.FAILED and dead.attempts == 1


def test_reap_requeues_expired_leases_only(jobs: JobStore) -> None:
    live, lost, last = jobs.add(job()), jobs.add(job(kind="sha256")), jobs.add(job(file_id="f3", attempts=1))
    jobs.claim(live.job_id, "a", now=10.0, lease=100.0)
    jobs.claim(lost.job_id, "b", now=10.0, lease=1.0)
    jobs.claim(last.job_id, "c", now=10.0, lease=1.0)
    reaped = {j.job_id: j for j in jobs.reap(now=20.0, retry_at=20.0)}
    assert set(reaped) == {lost.job_id, last.job_id}
    assert reaped[lost.job_id].status is JobStatus.PENDING and reaped[lost.job_id].error == LOST
    assert reaped[last.job_id].status is JobStatus.FAILED, "out of attempts: dead letter"
    assert jobs.reap(now=20.0, retry_at=20.0) == []
    assert not jobs.renew(lost.job_id, "b", 50.0), "the lost worker no longer holds it"
    assert jobs.claim(lost.job_id, "d", now=20.0, lease=5.0) is not None


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 2.0, 10.0) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]


def test_stale_finds_pending_jobs_past_due_once_per_window(jobs: JobStore) -> None:
    fresh, old, later, running = job(created=100.0), job(created=1.0), job(created=1.0), job(created=1.0)
    for j in (fresh, old, later, running):
        jobs.add(j)
    jobs.claim(later.job_id, "a", now=2.0, lease=1.0)
    jobs.fail(later.job_id, "a", "x", now=3.0, retry_at=500.0)
    jobs.claim(running.job_id, "b", now=2.0, lease=1000.0)
    found = jobs.stale(before=50.0, now=60.0)
    assert [j.job_id for j in found] == [old.job_id]
    assert found[0].next_attempt_at == 60.0 and found[0].status is JobStatus.PENDING
    assert jobs.stale(before=50.0, now=61.0) == [], "marked due at 60: not stale again in this window"
    assert {j.job_id for j in jobs.stale(before=600.0, now=700.0)} == {old.job_id, later.job_id, fresh.job_id}


def finish(jobs: JobStore, j: JobRecord, at: float, ok: bool = True) -> JobRecord:
    """Add ``j`` and end it at ``at``: COMPLETED, or FAILED (a dead letter)."""
    jobs.add(j)
    assert jobs.claim(j.job_id, "w", now=at - 1, lease=100.0) is not None
    done = (
        jobs.complete(j.job_id, "w", {}, now=at)
        if ok
        else jobs.fail(j.job_id, "w", "bad", now=at, retry_at=None)
    )
    assert done is not None
    return done


def test_prune_deletes_exactly_the_old_finished_jobs_in_bounded_batches(jobs: JobStore) -> None:
    old = [finish(jobs, job(file_id=f"o{n}"), at=10.0 + n, ok=n % 2 == 0) for n in range(5)]
    recent_done = finish(jobs, job(file_id="r"), at=500.0)
    waiting = jobs.add(job(file_id="p", created=1.0))
    running = jobs.add(job(file_id="q", created=1.0))
    assert jobs.claim(running.job_id, "w", now=2.0, lease=1.0) is not None  # lease long over: still kept
    backing_off = jobs.add(job(file_id="b", created=1.0))
    jobs.claim(backing_off.job_id, "w", now=2.0, lease=5.0)
    jobs.fail(backing_off.job_id, "w", "x", now=3.0, retry_at=4.0)

    first = jobs.prune(before=100.0, limit=3)
    assert [j.job_id for j in first] == [j.job_id for j in old[:3]], "oldest first, at most limit"
    second = jobs.prune(before=100.0, limit=3)
    assert [j.job_id for j in second] == [j.job_id for j in old[3:]]
    assert jobs.prune(before=100.0, limit=3) == []
    for j in old:
        assert jobs.get(j.job_id) is None and jobs.for_file(j.file_id) == []
    for kept in (recent_done, waiting, running, backing_off):
        assert jobs.get(kept.job_id) is not None
    assert {j.status for j in (jobs.get(running.job_id), jobs.get(backing_off.job_id)) if j} == {
        JobStatus.PROCESSING, JobStatus.PENDING,
    }  # fmt: skip
    assert jobs.reap(now=1000.0, retry_at=1000.0)[0].job_id == running.job_id, "its lease index survived"
    assert [j.job_id for j in jobs.prune(before=1000.0, limit=10)] == [recent_done.job_id]


def test_a_requeued_dead_letter_is_not_pruned(jobs: JobStore) -> None:
    dead = finish(jobs, job(), at=10.0, ok=False)
    assert jobs.requeue(dead.job_id, now=20.0) is not None
    assert jobs.prune(before=1000.0, limit=10) == []
    assert jobs.claim(dead.job_id, "w", now=30.0, lease=5.0) is not None


def test_purge_deletes_one_uploads_jobs_of_the_given_kinds(jobs: JobStore) -> None:
    index, digest, hook = job(), job(kind="sha256"), job(kind="webhook")
    other = job(file_id="f2")
    for j in (index, digest, hook, other):
        jobs.add(j)
    assert jobs.claim(digest.job_id, "w", now=2.0, lease=5.0) is not None
    purged = jobs.purge("f1", ("index", "sha256"))
    assert sorted(j.job_id for j in purged) == sorted([index.job_id, digest.job_id])
    assert [j.job_id for j in jobs.for_file("f1")] == [hook.job_id], "webhook deliveries stay"
    assert jobs.get(other.job_id) == other
    assert jobs.reap(now=100.0, retry_at=100.0) == [], "a purged PROCESSING job is not reaped"
    assert jobs.purge("f1", ("index",)) == []
