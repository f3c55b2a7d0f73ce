"""The outbox: writes to the job store that must not be lost to an outage.

An upload event turns into job-store writes (a ``webhook`` delivery job per
receiver, an auto-``index`` job, forgetting a terminated upload's jobs). If
the job store (Redis, SQLite) fails at that moment the write is not dropped:
it waits in this bounded, in-process, first-in-first-out outbox and one
retry thread tries the oldest entry again with exponential backoff
(:data:`RETRY` doubling up to :data:`MAX_RETRY` seconds) until the store
answers, then drains the rest in order. While entries wait, new writes queue
behind them (so events keep their order and callers do not each wait for the
store's timeout). A webhook job's event id and body are fixed before the
first try, so a retried write delivers the same event: at-least-once.

Bounds: at most :data:`LIMIT` entries wait; one more is dropped (logged as
``JobOutboxDropped`` and counted in ``tusd_py_jobs_outbox_dropped_total
{reason="full"}``). :meth:`Outbox.close` (process shutdown) keeps trying for
up to ``timeout`` seconds and counts what is still waiting after that under
``reason="shutdown"``. The outbox lives in memory: a process killed with
SIGKILL loses what it held.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tusd_py.jobs.records import JobRecord
from tusd_py.jobs.runner import Push, backend_errors
from tusd_py.jobs.store import JobStore

log = logging.getLogger("tusd_py.jobs")

#: Most writes waiting for the job store; one more is dropped (and counted).
LIMIT = 10_000
#: Seconds before the first retry of a failed write (doubling per failure).
RETRY = 0.25
#: Longest wait between two retries, seconds.
MAX_RETRY = 5.0
#: Seconds :meth:`Outbox.close` keeps trying by default (process shutdown).
FLUSH_TIMEOUT = 10.0


class Write(Protocol):
    """One write; ``run`` raises a backend error (see
    :func:`~tusd_py.jobs.runner.backend_errors`) to be retried."""

    what: str

    def run(self) -> None: ...


class JobWrite:
    """Store ``job`` and queue its id; a retry after a failed push does not store it again."""

    def __init__(self, job: JobRecord, store: JobStore, push: Push) -> None:
        self.job = job
        self.store = store
        self.push = push
        self.stored = False
        self.what = f"{job.kind} job {job.job_id} ({job.payload.get('type') or job.file_id})"

    def run(self) -> None:
        if not self.stored:
            self.store.add(self.job)
            self.stored = True
        self.push(self.job.job_id, self.job.priority, 0.0)


class Call:
    """Any idempotent call, e.g. queueing an index job (``submit`` dedupes)."""

    def __init__(self, what: str, fn: Callable[..., object], *args: Any) -> None:
        self.what = what
        self._fn = fn
        self._args = args

    def run(self) -> None:
        self._fn(*self._args)


class Outbox:
    """The bounded retry queue of job-store writes (see module docstring). Thread-safe."""

    def __init__(self, limit: int = LIMIT, retry: float = RETRY, max_retry: float = MAX_RETRY) -> None:
        self.limit = limit
        self.retry = retry
        self.max_retry = max_retry
        self.dropped = {"full": 0, "shutdown": 0}
        self._items: deque[Write] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._items)

    def write(self, item: Write) -> None:
        """Run ``item`` now, or keep it for the retry thread if the store fails
        or earlier writes still wait. Never raises a backend error."""
        with self._lock:
            waiting = bool(self._items)
        if not waiting:
            try:
                item.run()
                return
            except backend_errors() as exc:
                log.warning(
                    "job store unavailable (%s: %s); %s kept in the outbox",
                    type(exc).__name__, exc, item.what, extra={"event": "JobOutboxHolding"},
                )  # fmt: skip
        self.put(item)

    def put(self, item: Write) -> bool:
        """Keep ``item`` for retrying; False (dropped, counted) when full or closed."""
        with self._lock:
            reason = "shutdown" if self._closed else "full" if len(self._items) >= self.limit else None
            if reason is None:
                self._items.append(item)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._drain, name="tusd-job-outbox", daemon=True)
                    self._thread.start()
                return True
            self.dropped[reason] += 1
        state = f"full ({self.limit} waiting)" if reason == "full" else "closed"
        log.error(
            "job outbox %s: %s dropped", state, item.what,
            extra={"event": "JobOutboxDropped", "reason": reason},
        )  # fmt: skip
        return False

    def _head(self) -> Write | None:
        with self._lock:
            if not self._items or self._closed:
                self._thread = None
                return None
            return self._items[0]

    def _try_head(self, item: Write) -> bool:
        """Run the oldest entry; True (and removed) if the store took it."""
        try:
            item.run()
        except backend_errors():
            return False
        except Exception:
            log.exception("job outbox: %s failed; dropped", item.what)
        with self._lock:
            if self._items and self._items[0] is item:
                self._items.popleft()
        return True

    def _drain(self) -> None:
        delay = self.retry
        self._wake.wait(delay)  # the write just failed: give the store a moment
        while (item := self._head()) is not None:
            if self._try_head(item):
                if delay > self.retry:
                    log.info("job store answers again; outbox draining", extra={"event": "JobOutboxDraining"})
                delay = self.retry
                continue
            delay = min(self.max_retry, delay * 2)
            self._wake.wait(delay)

    def close(self, timeout: float = FLUSH_TIMEOUT) -> int:
        """Stop retrying in the background and flush for up to ``timeout`` s here;
        returns how many writes were dropped (counted as ``shutdown``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        delay = self.retry
        while time.monotonic() < deadline:
            with self._lock:
                item = self._items[0] if self._items else None
            if item is None:
                return 0
            if not self._try_head(item):
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(self.max_retry, delay * 2)
        with self._lock:
            left = len(self._items)
            self._items.clear()
            self.dropped["shutdown"] += left
        if left:
            log.error(
                "job outbox: %d writes still waiting at shutdown were dropped", left,
                extra={"event": "JobOutboxDropped", "reason": "shutdown", "count": left},
            )  # fmt: skip
        return left


class OutboxCollector(Collector):
    """``tusd_py_jobs_outbox_pending`` and ``tusd_py_jobs_outbox_dropped_total{reason}``."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "tusd_py_jobs_outbox_pending",
            "Job-store writes (webhook deliveries, index jobs) waiting for the job store",
            value=self._outbox.pending,
        )
        dropped = CounterMetricFamily(
            "tusd_py_jobs_outbox_dropped",
            "Job-store writes dropped: outbox full (reason=full) or still waiting at shutdown",
            labels=["reason"],
        )
        for reason, count in sorted(self._outbox.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped
