"""``LiveEventSink`` and ``LiveJobListener``: upload lifecycle events and job state
changes into the :class:`LiveHub`."""

from __future__ import annotations

from tusd_py.core.models import UploadInfo
from tusd_py.events.live.hub import LiveHub
from tusd_py.jobs.records import JobRecord

#: Service events forwarded to live subscribers (the message ``type``).
LIVE_EVENTS = frozenset({"upload.created", "upload.progress", "upload.finished", "upload.terminated"})


def upload_event(event: str, info: UploadInfo) -> dict[str, object]:
    """The live message of ``event`` about ``info`` (``at`` is added by the hub)."""
    return {
        "type": event,
        "upload_id": info.id,
        "offset": info.offset,
        "length": info.length,
        "state": info.state.value,
    }


class LiveEventSink:
    """An :class:`~tusd_py.core.events.EventSink` publishing to ``hub`` (never raises, never blocks).

    Only :data:`LIVE_EVENTS` reach it (``event_kinds``), and while the hub has
    nobody to tell (:attr:`LiveHub.idle`: no subscriber here, no bridge, no
    held-back progress) the message is not even built."""

    event_kinds = LIVE_EVENTS

    def __init__(self, hub: LiveHub) -> None:
        self._hub = hub

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        if event in LIVE_EVENTS and not self._hub.idle:
            self._hub.publish(info.owner, upload_event(event, info))


class LiveJobListener:
    """A :class:`~tusd_py.jobs.runner.JobListener` publishing the state changes of
    ``index`` and ``sha256`` jobs to their owner's subscribers as
    ``{"type": "job.pending"|"job.processing"|"job.completed"|"job.failed",
    "upload_id", "job_id", "kind", "status", "attempts", "error", "at"}``.
    Called from worker threads; hands over to the hub's loop, never blocks."""

    def __init__(self, hub: LiveHub, kinds: tuple[str, ...]) -> None:
        self._hub = hub
        self._kinds = kinds

    def job_changed(self, job: JobRecord) -> None:
        if job.kind not in self._kinds:
            return
        self._hub.publish_threadsafe(
            job.owner,
            {
                "type": f"job.{job.status.value.lower()}",
                "upload_id": job.file_id,
                "job_id": job.job_id,
                "kind": job.kind,
                "status": job.status.value,
                "attempts": job.attempts,
                "error": job.error,
            },
        )
