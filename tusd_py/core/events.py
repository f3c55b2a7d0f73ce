"""Lifecycle events (tusd ``pkg/hooks``): created, finished, terminated, failed.

The service emits events to an :class:`EventSink`; sinks must not raise and
must not block the event loop (webhooks enqueue, metrics count, logs log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
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


@runtime_checkable
class EventSink(Protocol):
    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        """Record ``event`` for ``info``; never raises, never blocks."""


class LogEventSink:
    """Logs each event as one structured line on ``tusd_py.app``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("tusd_py.app")

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        if event == "upload.progress":
            return
        self._log.info(
            EVENT_LOG_NAMES.get(event, event),
            extra={
                "event": EVENT_LOG_NAMES.get(event, event),
                "upload_id": info.id,
                "user": info.owner,
                "offset": info.offset,
                "length": info.length,
                "storage": info.storage,
                "detail": detail,
            },
        )


class MultiSink:
    """Fans one event out to several sinks, isolating their failures."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self._sinks = tuple(sinks)
        self._log = logging.getLogger("tusd_py.app")

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        for sink in self._sinks:
            try:
                sink.emit(event, info, detail)
            except Exception:
                self._log.exception("event sink %r failed", sink)
