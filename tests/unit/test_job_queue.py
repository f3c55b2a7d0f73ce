"""The huey queue wiring and the runner, on real SQLite files and a real redis-server:
priorities (premium before basic), delayed retries, lease renewal of a long job."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tusd_py.core.config import Config, load_config
from tusd_py.jobs.consumer import Consumer
from tusd_py.jobs.queue import JobQueue, build_huey
from tusd_py.jobs.records import JobRecord, JobStatus, priority_of
from tusd_py.jobs.runner import Runner
from tusd_py.jobs.store import SQLiteJobStore


@pytest.fixture(params=["sqlite", "redis"])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> Config:
    overrides: dict[str, Any] = {"server.data_dir": str(tmp_path)}
    if request.param == "redis":
        overrides["redis.url"] = request.getfixturevalue("redis_url")
        overrides["redis.prefix"] = f"q-{uuid.uuid4().hex[:8]}:"
    return load_config(environ={}, overrides=overrides)


def wait_for(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_premium_jobs_are_taken_before_basic_ones(config: Config) -> None:
    seen: list[str] = []
    queue = JobQueue(build_huey(config), seen.append)
    for name, tier in [
        ("basic-1", "basic"),
        ("basic-2", "basic"),
        ("premium", "premium"),
        ("basic-3", "basic"),
    ]:
        queue.push(name, priority_of(tier))
    consumer = Consumer(queue.huey, 1, lambda: None, 60.0)
    consumer.start()
    try:
        wait_for(lambda: len(seen) == 4)
    finally:
        consumer.stop(10)
    assert seen[0] == "premium" and sorted(seen[1:]) == ["basic-1", "basic-2", "basic-3"]
    if config.redis.url:
        import redis

        client = redis.Redis.from_url(config.redis.url)
        queue.push("late", 0, delay=60)
        ours, hueys = client.keys(f"{config.redis.prefix}jobs:*"), client.keys("huey.*")
        client.close()
        assert ours == [f"{config.redis.prefix}jobs:schedule".encode()], "queue keys carry [redis] prefix"
        assert hueys == []
    queue.close()


def test_a_delayed_push_waits_for_its_time(config: Config) -> None:
    seen: list[tuple[str, float]] = []
    queue = JobQueue(build_huey(config), lambda job_id: seen.append((job_id, time.monotonic())))
    consumer = Consumer(queue.huey, 1, lambda: None, 60.0)
    consumer.start()
    try:
        pushed = time.monotonic()
        queue.push("later", 0, delay=1.5)  # huey-redis keeps whole seconds
        queue.push("now", 0)
        wait_for(lambda: len(seen) == 2)
    finally:
        consumer.stop(10)
        queue.close()
    assert [s[0] for s in seen] == ["now", "later"]
    assert seen[1][1] - pushed >= 0.5


class Listener:
    def __init__(self) -> None:
        self.changes: list[JobRecord] = []

    def job_changed(self, job: JobRecord) -> None:
        self.changes.append(job)


def test_a_job_longer_than_its_lease_keeps_it_and_is_not_reaped(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "state.db")
    release = threading.Event()
    pushed: list[str] = []

    def slow(job: JobRecord) -> dict[str, Any]:
        release.wait(10)
        return {"ok": True}

    listener = Listener()
    runner = Runner(
        store=store, kinds={"slow": slow}, push=lambda j, p, d: pushed.append(j), listener=listener,
        lease=0.3, retry_delay=0.05, max_retry_delay=0.1,
    )  # fmt: skip
    job = store.add(JobRecord(job_id=uuid.uuid4().hex, file_id="f", kind="slow", created_at=1.0))
    worker = threading.Thread(target=runner.run, args=(job.job_id,))
    worker.start()
    try:
        wait_for(lambda: (store.get(job.job_id) or job).status is JobStatus.PROCESSING)
        deadline = time.monotonic() + 1.0  # more than three leases
        while time.monotonic() < deadline:
            assert runner.reap() == [], "a renewed lease must not be reaped"
            time.sleep(0.05)
    finally:
        release.set()
        worker.join(10)
    done = store.get(job.job_id)
    assert done is not None and done.status is JobStatus.COMPLETED and done.attempts == 1
    assert [c.status for c in listener.changes] == [JobStatus.PROCESSING, JobStatus.COMPLETED]
    assert pushed == []
    store.close()


def test_a_failing_kind_is_retried_with_backoff_then_dead_lettered(tmp_path: Path) -> None:
    store = SQLiteJobStore(tmp_path / "state.db")
    pushed: list[tuple[str, float]] = []

    def broken(job: JobRecord) -> dict[str, Any]:
        raise OSError("disk on fire")

    now = [100.0]
    runner = Runner(
        store=store, kinds={"broken": broken}, push=lambda j, p, d: pushed.append((j, d)),
        listener=Listener(), lease=5.0, retry_delay=1.0, max_retry_delay=10.0, clock=lambda: now[0],
    )  # fmt: skip
    job = store.add(JobRecord(job_id=uuid.uuid4().hex, file_id="f", kind="broken", max_attempts=3))
    runner.run(job.job_id)
    runner.run(job.job_id)  # before its backoff ended: not run, pushed again for the rest
    assert pushed == [(job.job_id, 1.0), (job.job_id, 1.0)]
    for _ in range(2):
        now[0] += 100.0
        runner.run(job.job_id)
    pushed.pop(1)
    assert [d for _, d in pushed] == [1.0, 2.0], "backoff doubles; no push after the last attempt"
    dead = store.get(job.job_id)
    assert dead is not None and dead.status is JobStatus.FAILED and dead.attempts == 3
    assert dead.error == "OSError: disk on fire"
    store.close()
