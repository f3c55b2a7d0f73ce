"""Problem details (RFC 9457) for errors answered to draft requests.

A draft request that fails gets the same status and stable error code as a
tus request would, but as ``application/problem+json``. Three codes carry the
draft's registered problem types:

* ``ERR_MISMATCHED_OFFSET`` (409) → ``mismatching-upload-offset`` with
  ``expected-offset`` and ``provided-offset``;
* ``ERR_INCONSISTENT_LENGTH`` (400) → ``inconsistent-upload-length``;
* ``ERR_UPLOAD_COMPLETED`` (400) → ``completed-upload``.

Everything else is ``about:blank`` with the code as an extension member.
"""

from __future__ import annotations

import http
import json
from collections.abc import Mapping
from typing import Final

PROBLEM_CONTENT_TYPE: Final = "application/problem+json"
PROBLEM_BASE: Final = "https://iana.org/assignments/http-problem-types#"
TYPES: Final = {
    "ERR_MISMATCHED_OFFSET": "mismatching-upload-offset",
    "ERR_INCONSISTENT_LENGTH": "inconsistent-upload-length",
    "ERR_UPLOAD_COMPLETED": "completed-upload",
}
_TITLES: Final = {
    "mismatching-upload-offset": "offset from request does not match offset of resource",
    "inconsistent-upload-length": "inconsistent length values for upload",
    "completed-upload": "upload is already completed",
}


def problem_type(code: str) -> str:
    """The problem type URI of an error code (``about:blank`` when none is registered)."""
    name = TYPES.get(code)
    return PROBLEM_BASE + name if name else "about:blank"


def _phrase(status: int) -> str:
    """The reason phrase of ``status`` (the title of an ``about:blank`` problem)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(status: int, code: str, message: str, members: Mapping[str, int] | None = None) -> str:
    """The JSON body: ``type``, ``title``, ``status``, ``detail``, ``code`` and extension ``members``."""
    name = TYPES.get(code)
    body: dict[str, object] = {
        "type": problem_type(code),
        "title": _TITLES[name] if name else _phrase(status),
        "status": status,
        "detail": message,
        "code": code,
    }
    if code == "ERR_MISMATCHED_OFFSET" and members:
        body.update(members)
    return json.dumps(body)
