"""Lifecycle events (tusd ``pkg/hooks``): created, finished, terminated, failed.

The service emits events to an :class:`EventSink`; sinks must not raise and
must not block the event loop (webhooks enqueue, metrics count, logs log).

A sink may declare the events it acts on as ``event_kinds`` (a frozenset of
event names); :class:`MultiSink` then never calls it for any other event, so
a sink pays nothing for kinds it drops (e.g. the live hub for
``upload.expired``, the log for ``upload.progress``). A sink without
``event_kinds`` receives every event.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from tusd_py.core.models import UploadInfo

#: Event names and their CamelCase log names.
EVENT_LOG_NAMES = {
    "upload.created": "UploadCreated",
    "upload.progress": "UploadProgress",
    "upload.finished": "UploadFinished",
    "upload.terminated": "UploadTerminated",
    "upload.expired": "UploadExpired",
    "upload.failed": "UploadFailed",
    "upload.interrupted": "UploadInterrupted",
}

#: Distinct event names whose routing :class:`MultiSink` remembers (bounds the
#: table should a caller invent names).
MAX_ROUTES = 64


@runtime_checkable
class EventSink(Protocol):
    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        """Record ``event`` for ``info``; never raises, never blocks."""


class InfoRecords:
    """INFO log records of one logger, built cheaply: what
    ``logger.info(msg, extra=fields)`` makes, without the logging module's
    per-record work a JSON line never shows (no caller lookup: ``pathname``,
    ``lineno`` and ``funcName`` are empty; the constant attributes are copied
    from a record made once). ``created``, ``process`` and ``thread`` are
    the real ones. :meth:`log` hands the record to the logger's handlers the
    usual way (level, filters, propagation)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._template = vars(logging.LogRecord(logger.name, logging.INFO, "", 0, "", None, None))

    def record(self, msg: str, fields: Mapping[str, object]) -> logging.LogRecord:
        """An INFO record of ``msg`` (already formatted) with ``fields`` as extras."""
        now = time.time()
        attrs = dict(self._template)
        attrs.update(fields)
        attrs["msg"] = msg
        attrs["created"] = now
        attrs["msecs"] = (now - int(now)) * 1000
        attrs["relativeCreated"] = attrs["relativeCreated"] + (now - self._template["created"]) * 1000
        attrs["process"] = os.getpid()
        attrs["thread"] = threading.get_ident()
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__ = attrs
        return record

    def log(self, msg: str, fields: Mapping[str, object]) -> None:
        """Log ``msg`` with ``fields`` at INFO (nothing when the logger is above INFO)."""
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.handle(self.record(msg, fields))


def event_kinds(sink: object) -> frozenset[str] | None:
    """The events ``sink`` declared it acts on (its ``event_kinds``), None = all."""
    kinds = getattr(sink, "event_kinds", None)
    return frozenset(kinds) if kinds is not None else None


class LogEventSink:
    """Logs each event but ``upload.progress`` as one structured line on ``tusd_py.app``."""

    #: Every named event but progress (one line per PATCH chunk would flood the log).
    event_kinds = frozenset(EVENT_LOG_NAMES) - {"upload.progress"}

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._records = InfoRecords(logger or logging.getLogger("tusd_py.app"))

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        if event == "upload.progress":
            return
        name = EVENT_LOG_NAMES.get(event, event)
        self._records.log(
            name,
            {
                "event": name,
                "upload_id": info.id,
                "user": info.owner,
                "offset": info.offset,
                "length": info.length,
                "storage": info.storage,
                "detail": detail,
            },
        )


class MultiSink:
    """Fans one event out to several sinks, isolating their failures.

    Each event goes, in the given order, to the sinks that declared it in
    their ``event_kinds`` and to those that declared none; the routing of an
    event name is computed once (at most one entry per distinct name)."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self._sinks = tuple(sinks)
        self._kinds = tuple(event_kinds(sink) for sink in self._sinks)
        self._routes: dict[str, tuple[EventSink, ...]] = {}
        self._log = logging.getLogger("tusd_py.app")

    def sinks_for(self, event: str) -> tuple[EventSink, ...]:
        """The sinks ``event`` is delivered to, in order."""
        route = self._routes.get(event)
        if route is None:
            route = tuple(
                sink
                for sink, kinds in zip(self._sinks, self._kinds, strict=True)
                if kinds is None or event in kinds
            )
            if len(self._routes) < MAX_ROUTES:
                self._routes[event] = route
        return route

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        for sink in self.sinks_for(event):
            try:
                sink.emit(event, info, detail)
            except Exception:
                self._log.exception("event sink %r failed", sink)
