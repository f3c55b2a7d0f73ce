"""Consumer threads: take job ids off huey and run them, plus one scheduler thread.

Workers never run on the IOLoop: ``serve`` starts a :class:`Consumer` with
``[jobs] workers`` threads, ``tusd-py worker`` runs one alone. Worker threads
dequeue and execute huey tasks (polling every :data:`POLL` s when the queue is
empty); the scheduler thread moves due delayed tasks onto the queue and, every
quarter visibility timeout, reaps expired leases (a killed consumer's jobs).
:meth:`Consumer.stop` lets running jobs finish (bounded by ``timeout``).
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


class Consumer:
    """``threads`` worker threads and one scheduler/reaper thread."""

    def __init__(self, huey: Huey, threads: int, reap: Callable[[], object], reap_every: float) -> None:
        self.huey = huey
        self.threads = threads
        self._reap = reap
        self._reap_every = max(SCHEDULE_EVERY, reap_every)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

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
            except Exception:
                log.exception("reading the job queue failed")
                self._stop.wait(1.0)
                continue
            if task is None:
                self._stop.wait(POLL)
                continue
            try:
                self.huey.execute(task)
            except Exception:
                log.exception("job task %s raised", task.id)

    def _schedule(self) -> None:
        since_reap = self._reap_every
        while not self._stop.wait(SCHEDULE_EVERY):
            try:
                for task in self.huey.read_schedule():
                    self.huey.enqueue(task)
                since_reap += SCHEDULE_EVERY
                if since_reap >= self._reap_every:
                    since_reap = 0.0
                    self._reap()
            except Exception:
                log.exception("job scheduler pass failed")
