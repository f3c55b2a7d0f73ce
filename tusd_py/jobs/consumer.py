"""Consumer threads: take job ids off huey and run them, plus one scheduler thread.

Workers never run on the IOLoop: ``serve`` starts a :class:`Consumer` with
``[jobs] workers`` threads, ``tusd-py worker`` runs one alone. Worker threads
dequeue and execute huey tasks (polling every :data:`POLL` s when the queue is
empty); the scheduler thread moves due delayed tasks onto the queue and, every
quarter visibility timeout, reaps expired leases (a killed consumer's jobs) and
re-queues jobs whose message was lost; with a ``sweep`` it also runs that
(pruning old finished jobs) on its first pass and every ``sweep_every``
seconds. :meth:`Consumer.stop` lets running jobs finish (bounded by ``timeout``).

A backend outage (Redis down, SQLite locked) is an operational condition, not
a bug: it is logged once as a warning when it starts and once when it ends,
and the threads retry every :data:`OUTAGE_RETRY` seconds meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from huey.api import Huey  # type: ignore[import-untyped]

log = logging.getLogger("tusd_py.jobs")

#: Seconds an idle worker waits before looking at an empty queue again.
POLL = 0.1
#: Seconds between two looks at huey's schedule (delayed retries).
SCHEDULE_EVERY = 0.25
#: Seconds between attempts while the queue's backend is unavailable.
OUTAGE_RETRY = 1.0


class Outage:
    """Logs the start and the end of a backend outage once each (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down = False

    def failed(self, what: str, exc: Exception) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        log.warning(
            "job queue unavailable (%s: %s: %s); retrying every %gs",
            what, type(exc).__name__, exc, OUTAGE_RETRY,
            extra={"event": "JobQueueUnavailable"},
        )  # fmt: skip

    def ok(self) -> None:
        with self._lock:
            if not self._down:
                return
            self._down = False
        log.info("job queue available again", extra={"event": "JobQueueAvailable"})


class Consumer:
    """``threads`` worker threads and one scheduler/reaper thread."""

    def __init__(
        self,
        huey: Huey,
        threads: int,
        reap: Callable[[], object],
        reap_every: float,
        sweep: Callable[[], object] | None = None,
        sweep_every: float = 3600.0,
    ) -> None:
        self.huey = huey
        self.threads = threads
        self._reap = reap
        self._reap_every = max(SCHEDULE_EVERY, reap_every)
        self._sweep = sweep
        self._sweep_every = max(SCHEDULE_EVERY, sweep_every)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.outage = Outage()

    def start(self) -> None:
        for n in range(self.threads):
            self._spawn(self._work, f"tusd-job-{n}")
        self._spawn(self._schedule, "tusd-job-scheduler")
        log.info("job consumer started", extra={"event": "JobConsumerStarted", "threads": self.threads})

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop taking work; wait up to ``timeout`` s for running jobs."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()

    @property
    def running(self) -> bool:
        return bool(self._threads) and not self._stop.is_set()

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                task = self.huey.dequeue()
            except Exception as exc:
                self.outage.failed("reading the queue", exc)
                self._stop.wait(OUTAGE_RETRY)
                continue
            self.outage.ok()
            if task is None:
                self._stop.wait(POLL)
                continue
            try:
                self.huey.execute(task)
            except Exception:
                log.exception("job task %s raised", task.id)

    def _schedule(self) -> None:
        since_reap, since_sweep = self._reap_every, self._sweep_every
        while not self._stop.wait(SCHEDULE_EVERY):
            try:
                for task in self.huey.read_schedule():
                    self.huey.enqueue(task)
                since_reap += SCHEDULE_EVERY
                if since_reap >= self._reap_every:
                    since_reap = 0.0
                    self._reap()
                since_sweep += SCHEDULE_EVERY
                if self._sweep is not None and since_sweep >= self._sweep_every:
                    since_sweep = 0.0
                    self._sweep()
            except Exception as exc:
                self.outage.failed("scheduler pass", exc)
                self._stop.wait(OUTAGE_RETRY)
