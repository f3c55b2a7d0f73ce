"""Webhook events: building, queueing and delivering them.

An event is ``{"id", "type", "created_at", "data"}``; its body text is fixed
when the event happens and stored in a ``webhook`` job (one per receiver of
``[hooks] url``), so every retry sends the same bytes and the same ``id``
(receivers de-duplicate by it: delivery is at-least-once). A delivery is an
HTTP POST with ``Content-Type: application/json`` and ``Tusd-Signature``
(:mod:`tusd_py.events.hooks.signing`); a 2xx answer completes the job, anything else
(or no answer within ``[hooks] timeout``) is retried with the queue's backoff,
until ``[jobs] max_attempts`` (then FAILED, visible as a dead letter).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from tusd_py.core.config_sections import HooksConfig
from tusd_py.core.models import UploadInfo, iso_time
from tusd_py.events.hooks.signing import HEADER, signature
from tusd_py.jobs.records import JobRecord

#: Event types a receiver may get.
EVENT_TYPES = ("upload.created", "upload.finished", "upload.terminated", "job.completed", "job.failed")
KIND = "webhook"


#: Deliveries go straight to the receiver (no proxy from the environment).
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx (retried)."""


def event_body(event_type: str, data: dict[str, Any], now: float) -> tuple[str, str]:
    """``(event id, JSON body text)`` of a new event."""
    event_id = uuid.uuid4().hex
    body = {"id": event_id, "type": event_type, "created_at": iso_time(now), "data": data}
    return event_id, json.dumps(body, separators=(",", ":"), sort_keys=True)


def upload_data(info: UploadInfo, detail: str | None) -> dict[str, Any]:
    """The ``data`` of an ``upload.*`` event."""
    return {
        "file_id": info.id,
        "owner": info.owner,
        "filename": info.filename,
        "size": info.length,
        "offset": info.offset,
        "mime": info.mime,
        "storage": info.storage,
        "visibility": info.visibility,
        "detail": detail,
    }


def job_data(job: JobRecord) -> dict[str, Any]:
    """The ``data`` of a ``job.*`` event."""
    return {
        "job_id": job.job_id,
        "file_id": job.file_id,
        "kind": job.kind,
        "status": job.status.value,
        "attempts": job.attempts,
        "error": job.error,
        "result": job.result,
    }


def webhook_jobs(
    config: HooksConfig, event_type: str, data: dict[str, Any], owner: str, now: float, max_attempts: int
) -> list[JobRecord]:
    """One PENDING ``webhook`` job per configured receiver for a new event."""
    event_id, body = event_body(event_type, data, now)
    return [
        JobRecord(
            job_id=uuid.uuid4().hex,
            file_id=str(data.get("file_id") or ""),
            kind=KIND,
            owner=owner,
            max_attempts=max_attempts,
            payload={"url": url, "event_id": event_id, "type": event_type, "body": body},
            created_at=now,
            updated_at=now,
        )
        for url in config.url
    ]


def deliver(job: JobRecord, config: HooksConfig, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """POST the event of ``job`` once; raises :class:`DeliveryFailed` unless 2xx."""
    body = str(job.payload["body"]).encode()
    request = urllib.request.Request(
        str(job.payload["url"]),
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "tusd-py-webhooks",
            "Tusd-Event-Id": str(job.payload["event_id"]),
            HEADER: signature(config.secret, body, int(clock())),
        },
    )
    try:
        with OPENER.open(request, timeout=config.timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"receiver answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryFailed(f"receiver unreachable: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"receiver answered {status}")
    return {"status": status, "event_id": job.payload["event_id"], "type": job.payload["type"]}
