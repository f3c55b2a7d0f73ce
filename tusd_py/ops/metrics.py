"""Prometheus metrics of one server process (``GET /metrics``).

:class:`Metrics` owns its :class:`~prometheus_client.CollectorRegistry`
(never the library's global one) and is built once per process by
``build_context`` and reached through ``AppContext.metrics``. It is fed by

* the request log function (:meth:`Metrics.observe_request`): requests by
  method/status, PATCH durations, throttled (429/503) answers;
* :class:`MetricsEventSink`: upload lifecycle counters;
* the streaming handler: body bytes as they are read (one integer addition
  per received chunk, nothing else on that path);
* :meth:`Metrics.track`: active streams and draining, read from the
  :class:`~tusd_py.ops.lifecycle.Lifecycle` only when scraped;
* storage backends through :class:`S3Observer` (part latency, queue depth).

Series (prefix ``tusd_py_``): ``requests_total{method,status}``,
``bytes_received_total``, ``uploads_{created,finished,failed,terminated,
expired,interrupted}_total``, ``active_streams``, ``draining``,
``patch_duration_seconds``, ``throttled_requests_total{status,code}``,
``s3_part_duration_seconds{outcome}``, ``s3_queue_depth``. There is no job
queue yet, so no job series are exported.

Several processes (``serve --workers N``, :mod:`tusd_py.cli.workers`): when
``PROMETHEUS_MULTIPROC_DIR`` is set (the supervisor sets a fresh directory
before forking and removes it at exit), the series are prometheus-client's
multiprocess values (one mmapped file per process in that directory) and a
scrape of any worker answers the sum over every worker, dead ones included
for counters and histograms (totals never go down when a worker is
replaced). ``active_streams`` and ``s3_queue_depth`` are summed over live
workers and ``draining`` is their maximum (the supervisor calls
``mark_process_dead`` for a worker that exited). In that mode the body
bytes of a stream reach the shared files per received chunk, and each
worker's ``active_streams``/``draining`` per received chunk, answered
request and scrape and at least every ``SHARE_INTERVAL`` seconds. Without the variable
(single-process serve) everything stays in this process's registry.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client import values as prometheus_values
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from tusd_py.core.models import UploadInfo
from tusd_py.ops.lifecycle import Lifecycle

#: Methods counted under their own label; anything else is ``OTHER``.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"})
#: Statuses counted as throttling (rate limits, busy, shutting down, backend unavailable).
THROTTLE_STATUSES = frozenset({429, 503})
#: Upload events counted, by event name.
UPLOAD_EVENTS = ("created", "finished", "failed", "terminated", "expired", "interrupted")

PATCH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
PART_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: The environment variable naming prometheus-client's multiprocess directory.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Multiprocess mode: the longest a worker's active_streams/draining stay stale (s).
SHARE_INTERVAL = 0.5


class S3Observer(Protocol):
    """What a relaying storage backend reports (implemented by :class:`Metrics`)."""

    def observe_s3_part(self, seconds: float, ok: bool) -> None:
        """One part upload attempt ended after ``seconds``; ``ok`` if it was stored."""

    def s3_queue_changed(self, delta: int) -> None:
        """Parts waiting for or in upload changed by ``delta`` (+1 queued, -1 done)."""


class NullS3Observer:
    """Discards S3 observations (a backend's default)."""

    def observe_s3_part(self, seconds: float, ok: bool) -> None:
        return None

    def s3_queue_changed(self, delta: int) -> None:
        return None


def multiprocess_dir(environ: dict[str, str] | None = None) -> str | None:
    """The multiprocess directory named by ``environ`` (default ``os.environ``), or None."""
    return (os.environ if environ is None else environ).get(MULTIPROC_ENV) or None


def _use_multiprocess_values() -> None:
    """Make prometheus-client store new metric values in mmapped files.

    prometheus-client picks its value class when first imported; a worker
    forked from a supervisor that imported it before setting
    :data:`MULTIPROC_ENV` must switch explicitly (before any metric exists).
    """
    if not getattr(prometheus_values.ValueClass, "_multiprocess", False):
        prometheus_values.ValueClass = prometheus_values.MultiProcessValue()  # type: ignore[no-untyped-call]


class Metrics:
    """The metric objects of one process and their registry.

    Multiprocess mode (see module doc) is chosen at construction from
    ``multiproc_dir`` (default: :data:`MULTIPROC_ENV` in the environment).
    """

    def __init__(self, multiproc_dir: str | None = None) -> None:
        self.multiproc_dir = multiproc_dir if multiproc_dir is not None else multiprocess_dir()
        if self.multiproc_dir is not None:
            _use_multiprocess_values()
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "tusd_py_requests",
            "HTTP requests answered, by method and status",
            ["method", "status"],
            registry=r,
        )
        #: Upload body bytes read so far: a plain int the streaming handler adds
        #: to per chunk (cheaper than a locked Counter), exported at scrape time
        #: (multiprocess mode: also copied to a shared counter as it grows).
        self._bytes_received = 0
        self._bytes_shared: Counter | None = None
        if self.multiproc_dir is None:
            r.register(_BytesReceived(self))
        else:
            self._bytes_shared = Counter(
                "tusd_py_bytes_received",
                "Upload body bytes read from clients (counted as they arrive)",
                registry=r,
            )
        self.uploads = {
            event: Counter(f"tusd_py_uploads_{event}", f"Uploads {event}", registry=r)
            for event in UPLOAD_EVENTS
        }
        self.active_streams = Gauge(
            "tusd_py_active_streams",
            "Request bodies streaming into uploads now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.draining = Gauge(
            "tusd_py_draining",
            "1 while the server drains for shutdown",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.patch_duration = Histogram(
            "tusd_py_patch_duration_seconds", "Duration of PATCH requests", buckets=PATCH_BUCKETS, registry=r
        )
        self.throttled = Counter(
            "tusd_py_throttled_requests",
            "Requests refused with 429 or 503 (rate limits, busy, shutdown, backend unavailable)",
            ["status", "code"],
            registry=r,
        )
        self.s3_part_duration = Histogram(
            "tusd_py_s3_part_duration_seconds",
            "Duration of S3 part uploads, by outcome (ok, error)",
            ["outcome"],
            buckets=PART_BUCKETS,
            registry=r,
        )
        self.s3_queue_depth = Gauge(
            "tusd_py_s3_queue_depth", "S3 parts queued or uploading", registry=r, multiprocess_mode="livesum"
        )
        #: ``requests`` children by (method label, status): labels() validates and
        #: locks on every call; a hit here is one dict lookup per request.
        self._request_series: dict[tuple[str, int], Counter] = {}
        self._lifecycle: Lifecycle | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._shown_state = (0, False)
        self._scrape_registry = r
        if self.multiproc_dir is not None:
            self._scrape_registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scrape_registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]

    @property
    def bytes_received(self) -> int:
        """Upload body bytes read so far by this process."""
        return self._bytes_received

    @bytes_received.setter
    def bytes_received(self, value: int) -> None:
        if self._bytes_shared is not None:
            self._bytes_shared.inc(value - self._bytes_received)
            self._share_lifecycle()
        self._bytes_received = value

    def track(self, lifecycle: Lifecycle) -> None:
        """Read active streams and draining from ``lifecycle`` at scrape time
        (multiprocess mode: also whenever a request ends or a chunk arrives)."""
        self._lifecycle = lifecycle
        if self.multiproc_dir is None:
            self.active_streams.set_function(lambda: lifecycle.active_streams)
            self.draining.set_function(lambda: 1.0 if lifecycle.draining else 0.0)
        else:
            self._shown_state = (-1, False)
            self._share_lifecycle()

    def _share_lifecycle(self) -> None:
        """Multiprocess mode: write this process's lifecycle gauges when they changed
        (and make sure they are also rewritten every :data:`SHARE_INTERVAL` seconds)."""
        lifecycle = self._lifecycle
        if lifecycle is None:
            return
        if self._ticker is None:
            self._start_ticker()
        state = (lifecycle.active_streams, lifecycle.draining)
        if state != self._shown_state:
            self._shown_state = state
            self.active_streams.set(state[0])
            self.draining.set(1.0 if state[1] else 0.0)

    def _start_ticker(self) -> None:
        """Rewrite the lifecycle gauges every :data:`SHARE_INTERVAL` s on the running
        loop (a stream can end after the last request a worker answered); the timer
        dies with its loop. Without a running loop, the next call tries again."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        def tick() -> None:
            self._ticker = loop.call_later(SHARE_INTERVAL, tick)
            self._share_lifecycle()

        self._ticker = loop.call_later(SHARE_INTERVAL, tick)

    def observe_request(self, method: str, status: int, code: str | None, seconds: float) -> None:
        """Count one answered (or abandoned) request."""
        label = method if method in KNOWN_METHODS else "OTHER"
        child = self._request_series.get((label, status))
        if child is None:  # at most 7 methods x the statuses this server answers
            child = self._request_series[(label, status)] = self.requests.labels(label, str(status))
        child.inc()
        if label == "PATCH":
            self.patch_duration.observe(seconds)
        if status in THROTTLE_STATUSES:
            self.throttled.labels(str(status), code or "").inc()
        if self.multiproc_dir is not None:
            self._share_lifecycle()

    def observe_upload(self, event: str) -> None:
        """Count an upload event such as ``upload.created``; others are ignored."""
        counter = self.uploads.get(event.removeprefix("upload."))
        if counter is not None:
            counter.inc()

    # --- S3Observer -------------------------------------------------------------

    def observe_s3_part(self, seconds: float, ok: bool) -> None:
        self.s3_part_duration.labels("ok" if ok else "error").observe(seconds)

    def s3_queue_changed(self, delta: int) -> None:
        self.s3_queue_depth.inc(delta)

    # --- exposition ----------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        """``(body, content type)`` of the text exposition format: this
        process's series, or in multiprocess mode every worker's, aggregated."""
        if self.multiproc_dir is not None:
            self._share_lifecycle()
        return generate_latest(self._scrape_registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int, directory: str) -> None:
    """Drop the live gauges of the exited worker ``pid`` from ``directory``
    (its counters and histograms stay in the sums)."""
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class _BytesReceived(Collector):
    """Exports :attr:`Metrics.bytes_received` as a counter."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "tusd_py_bytes_received",
            "Upload body bytes read from clients (counted as they arrive)",
            value=self._metrics.bytes_received,
        )


class MetricsEventSink:
    """An :class:`~tusd_py.core.events.EventSink` counting upload events."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        self._metrics.observe_upload(event)
