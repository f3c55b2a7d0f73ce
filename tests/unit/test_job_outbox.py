"""The job outbox (writes kept while the job store is down) and the consumer's
prune sweep, with an in-memory store that fails on demand."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
import redis.exceptions
from huey import MemoryHuey  # type: ignore[import-untyped]
from prometheus_client import CollectorRegistry, generate_latest

from tusd_py.jobs.consumer import Consumer
from tusd_py.jobs.outbox import Call, JobWrite, Outbox, OutboxCollector
from tusd_py.jobs.records import JobRecord


class FlakyStore:
    """Keeps added jobs in a list; raises a Redis connection error while ``down``."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.added: list[str] = []
        self.pushed: list[str] = []
        self.push_fails = 0

    def add(self, job: JobRecord, *, dedupe: bool = False) -> JobRecord:
        if self.down.is_set():
            raise redis.exceptions.ConnectionError("connection refused")
        self.added.append(job.job_id)
        return job

    def push(self, job_id: str, priority: int, delay: float) -> None:
        if self.push_fails:
            self.push_fails -= 1
            raise redis.exceptions.TimeoutError("timeout")
        self.pushed.append(job_id)


def write(store: FlakyStore, n: int) -> JobWrite:
    job = JobRecord(job_id=f"j{n}", file_id="f", kind="webhook", payload={"type": "upload.finished"})
    return JobWrite(job, store, store.push)  # type: ignore[arg-type]


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_writes_wait_while_the_store_is_down_and_drain_in_order_once() -> None:
    store, outbox = FlakyStore(), Outbox(retry=0.01, max_retry=0.05)
    outbox.write(write(store, 0))
    assert store.added == ["j0"] and store.pushed == ["j0"] and outbox.pending == 0
    store.down.set()
    for n in (1, 2, 3):
        outbox.write(write(store, n))
    assert outbox.pending == 3 and store.added == ["j0"]
    store.push_fails = 1  # stored, then the queue push fails once: retried without storing again
    store.down.clear()
    wait_for(lambda: outbox.pending == 0)
    assert store.added == ["j0", "j1", "j2", "j3"]
    assert store.pushed == ["j0", "j1", "j2", "j3"]
    assert outbox.close(timeout=1.0) == 0


def test_new_writes_queue_behind_waiting_ones() -> None:
    store, outbox = FlakyStore(), Outbox(retry=5.0)
    store.down.set()
    outbox.write(write(store, 1))
    store.down.clear()  # answers again, but the retry thread sleeps for 5 s
    outbox.write(write(store, 2))
    assert store.added == [] and outbox.pending == 2, "kept behind j1: events stay in order"
    assert outbox.close(timeout=5.0) == 0 and store.added == ["j1", "j2"]


def test_a_full_outbox_drops_counts_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    store, outbox = FlakyStore(), Outbox(limit=2, retry=0.01, max_retry=0.02)
    registry = CollectorRegistry()
    registry.register(OutboxCollector(outbox))
    store.down.set()
    with caplog.at_level(logging.ERROR, "tusd_py.jobs"):
        for n in range(3):
            outbox.write(write(store, n))
    assert outbox.pending == 2
    text = generate_latest(registry).decode()
    assert 'tusd_py_jobs_outbox_dropped_total{reason="full"} 1.0' in text
    assert "tusd_py_jobs_outbox_pending 2.0" in text
    assert [r for r in caplog.records if getattr(r, "event", None) == "JobOutboxDropped"]
    assert "j2" in caplog.text
    # Shutdown: what the store never took within the flush time is dropped and counted.
    assert outbox.close(timeout=0.2) == 2
    assert 'tusd_py_jobs_outbox_dropped_total{reason="shutdown"} 2.0' in generate_latest(registry).decode()
    assert store.added == []


def test_close_flushes_what_the_store_takes_in_time() -> None:
    store, outbox = FlakyStore(), Outbox(retry=0.01, max_retry=0.02)
    store.down.set()
    calls: list[str] = []
    outbox.write(write(store, 1))
    outbox.write(Call("a call", calls.append, "x"))
    timer = threading.Timer(0.2, store.down.clear)
    timer.start()
    try:
        assert outbox.close(timeout=10.0) == 0
    finally:
        timer.cancel()
    assert store.added == ["j1"] and calls == ["x"]
    assert not outbox.put(write(store, 3)) and outbox.dropped["shutdown"] == 1, "closed: nothing more"


def test_the_consumer_prunes_on_its_first_pass_then_every_sweep_interval() -> None:
    swept = threading.Semaphore(0)
    consumer = Consumer(MemoryHuey("t"), 0, lambda: None, 60.0, sweep=swept.release, sweep_every=0.3)
    consumer.start()
    try:
        assert swept.acquire(timeout=5), "first pass"
        started = time.monotonic()
        assert swept.acquire(timeout=5), "second pass"
        assert time.monotonic() - started >= 0.2
    finally:
        consumer.stop(5)
