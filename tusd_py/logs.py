"""Structured logging: JSON lines on named loggers.

Loggers: ``tusd_py.access`` (one line per request), ``tusd_py.app``
(lifecycle events such as ``UploadCreated`` and warnings),
``tusd_py.storage``. :func:`access_log` is Tornado's ``log_function``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import tornado.web

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()) | {"message", "asctime"}


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
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO", stream: Any = None) -> None:
    """Route tusd_py and tornado loggers to one JSON handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)


def access_log(handler: tornado.web.RequestHandler) -> None:
    """One JSON access line per request (Tornado ``log_function``)."""
    request = handler.request
    principal = getattr(handler, "principal", None)
    status = handler.get_status()
    fields = {
        "event": "Request",
        "request_id": getattr(handler, "request_id", None),
        "method": request.method,
        "path": request.path,
        "status": status,
        "user": principal.user if principal is not None else None,
        "upload_id": getattr(handler, "upload_id", None),
        "bytes": getattr(handler, "bytes_received", 0),
        "duration_ms": round(request.request_time() * 1000, 2),
        "remote": request.remote_ip,
        "code": getattr(handler, "error_code", None),
    }
    logger = logging.getLogger("tusd_py.access")
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s %s %d", request.method, request.path, status, extra=fields)


def now() -> float:
    return time.time()
