"""OpenAPI pieces of the live events: ``/events`` and SSE on ``/index-status/{id}``
(merged into :func:`tusd_py.rest.openapi.openapi_document`)."""

from __future__ import annotations

import copy
from typing import Any


def live_event_schema() -> dict[str, Any]:
    """One live message (``/events`` text frame, see :mod:`handlers.live`)."""
    return {
        "type": "object",
        "required": ["type", "at"],
        "properties": {
            "type": {
                "type": "string",
                "description": "ready (after authentication), upload.created, upload.progress, "
                "upload.finished, upload.terminated; job.* events carry their own fields",
            },
            "upload_id": {"type": "string"},
            "offset": {"type": "integer"},
            "length": {"type": ["integer", "null"]},
            "state": {"type": "string"},
            "at": {"type": "string", "format": "date-time"},
        },
    }


_EVENTS_DESCRIPTION = (
    "WebSocket (send `Connection: Upgrade`, `Upgrade: websocket`). Authenticate with an "
    '`Authorization: Bearer` header, or send `{"token": "..."}` as the first message within '
    "5 s (browsers); otherwise the socket closes with 4401 (no or bad token) or 4400 (bad first "
    'message). The server then sends `{"type": "ready"}` and one JSON text message per event '
    "about the caller's uploads (admins: all), progress at most every 250 ms per upload. "
    "Cross-origin handshakes follow `server.cors_origins`."
)


def live_paths() -> dict[str, Any]:
    """The ``/events`` path item."""
    return {
        "/events": {
            "get": {
                "tags": ["rest"],
                "summary": "Live events of the caller's uploads (WebSocket)",
                "description": _EVENTS_DESCRIPTION,
                "security": [{"bearer": []}, {}],
                "responses": {
                    "101": {
                        "description": "switching to the WebSocket protocol; messages follow",
                        "content": {"application/json": {"schema": live_event_schema()}},
                    },
                    "401": {"description": "invalid Authorization header (refused before the upgrade)"},
                    "403": {"description": "origin not in server.cors_origins"},
                },
            }
        }
    }


def with_event_stream(status_item: dict[str, Any]) -> dict[str, Any]:
    """``status_item`` (``/index-status/{file_id}``) plus its ``text/event-stream`` answer."""
    item = copy.deepcopy(status_item)
    ok = item["get"]["responses"]["200"]
    ok["description"] += (
        "; with `Accept: text/event-stream`, Server-Sent Events: `event: status` with this "
        "document now and on every change until the upload is no longer uploading "
        "(`event: terminated` if it is deleted)"
    )
    ok["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    return item
