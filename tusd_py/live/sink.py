"""``LiveEventSink``: the upload service's lifecycle events into the :class:`LiveHub`."""

from __future__ import annotations

from tusd_py.live.hub import LiveHub
from tusd_py.models import UploadInfo

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
    """An :class:`~tusd_py.events.EventSink` publishing to ``hub`` (never raises, never blocks)."""

    def __init__(self, hub: LiveHub) -> None:
        self._hub = hub

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        if event in LIVE_EVENTS:
            self._hub.publish(info.owner, upload_event(event, info))
