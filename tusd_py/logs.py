"""Structured logging: JSON lines on named loggers, written off the event loop.

Loggers: ``tusd_py.access`` (one line per request), ``tusd_py.app``
(lifecycle events such as ``UploadCreated`` and warnings),
``tusd_py.storage``. :func:`access_log` writes the access line (Tornado's
``log_function`` calls it through ``tusd_py.app``).

Logging never blocks the event loop: :func:`configure_logging` installs a
:class:`LogPipeline` whose handler only puts records into a bounded queue
(``put_nowait``; when the writer falls behind, records are dropped and
counted, and the count is logged once the writer catches up). One thread
formats the JSON and writes it to the stream (stderr → journald under
systemd). Extras passed to a log call must not be mutated afterwards.
"""

from __future__ import annotations

import copy
import json
import logging
import logging.handlers
import queue
import sys
import time
from typing import Any

import tornado.web

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}

#: Records buffered between the loop and the writer thread before dropping.
QUEUE_CAPACITY = 10_000
#: Status logged for a request whose connection ended before any response
#: (client gone, body cut on shutdown, idle timeout); ``code`` says why.
UNANSWERED_STATUS = 499


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_text:
            payload["exc"] = record.exc_text
        elif record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = record.stack_info
        return json.dumps(payload, default=str)


class _QueueHandler(logging.handlers.QueueHandler):
    """Enqueues without blocking; counts what a full queue forced it to drop."""

    def __init__(self, q: queue.Queue[Any]) -> None:
        super().__init__(q)
        self.dropped = 0
        self._plain = logging.Formatter()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # Merge message and args now (args may change later); leave the JSON
        # encoding to the writer thread.
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = self._plain.formatException(record.exc_info)
            record.exc_info = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1


class _Listener(logging.handlers.QueueListener):
    """The writer thread; reports dropped records when it catches up."""

    def __init__(self, q: queue.Queue[Any], source: _QueueHandler, output: logging.Handler) -> None:
        super().__init__(q, output)
        self._records = q
        self._source = source
        self._reported = 0

    def handle(self, record: logging.LogRecord) -> None:
        dropped = self._source.dropped
        if dropped > self._reported:
            notice = logging.LogRecord(
                "tusd_py.app",
                logging.WARNING,
                __file__,
                0,
                "%d log records dropped",
                (dropped - self._reported,),
                None,
            )
            self._reported = dropped
            super().handle(notice)
        super().handle(record)

    def enqueue_sentinel(self) -> None:
        # Blocking put (the base class's put_nowait fails on a full queue);
        # the thread is draining it. ``None`` is QueueListener's sentinel.
        self._records.put(getattr(self, "_sentinel", None))


class LogPipeline:
    """A non-blocking handler for the loop and the thread that writes JSON lines."""

    def __init__(self, stream: Any, capacity: int = QUEUE_CAPACITY) -> None:
        records: queue.Queue[Any] = queue.Queue(capacity)
        self.handler = _QueueHandler(records)
        output = logging.StreamHandler(stream)
        output.setFormatter(JsonFormatter())
        self._listener = _Listener(records, self.handler, output)
        self._running = False

    @property
    def dropped(self) -> int:
        return self.handler.dropped

    def start(self) -> None:
        if not self._running:
            self._listener.start()
            self._running = True

    def stop(self) -> None:
        """Write what is queued and stop the thread; idempotent."""
        if self._running:
            self._running = False
            self._listener.stop()


def configure_logging(level: str = "INFO", stream: Any = None) -> LogPipeline:
    """Route tusd_py and tornado loggers to one JSON pipeline; returns it
    started (call ``stop()`` before exiting to flush)."""
    pipeline = LogPipeline(stream or sys.stderr)
    root = logging.getLogger()
    root.handlers[:] = [pipeline.handler]
    root.setLevel(level)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    pipeline.start()
    return pipeline


def request_fields(handler: tornado.web.RequestHandler) -> dict[str, Any]:
    """The access-line fields of a request."""
    request = handler.request
    principal = getattr(handler, "principal", None)
    return {
        "event": "Request",
        "request_id": getattr(handler, "request_id", None),
        "method": request.method,
        "path": request.path,
        "status": handler.get_status(),
        "user": principal.user if principal is not None else None,
        "upload_id": getattr(handler, "upload_id", None),
        "bytes": getattr(handler, "bytes_received", 0),
        "duration_ms": round(request.request_time() * 1000, 2),
        "remote": request.remote_ip,
        "code": getattr(handler, "error_code", None),
    }


def access_log(handler: tornado.web.RequestHandler) -> dict[str, Any]:
    """Write one JSON access line for ``handler``'s request; returns its fields."""
    fields = request_fields(handler)
    logger = logging.getLogger("tusd_py.access")
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s %s %d", fields["method"], fields["path"], fields["status"], extra=fields)
    return fields


def now() -> float:
    return time.time()
