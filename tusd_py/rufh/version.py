"""Which protocol a request speaks: tus 1.0, or a draft interop version.

Interop versions (``Upload-Draft-Interop-Version``) and what changed between
them, as far as a server sees it:

* 3 (draft -01): completeness in ``Upload-Incomplete`` (the inverse Boolean);
* 4 (-02): ``Upload-Complete`` replaces it;
* 5 (-03): HEAD may answer 200;
* 6 (-04/-05): appends need ``Content-Type: application/partial-upload``;
  ``Upload-Limit`` (expiry key ``expires``); ``Upload-Length``; progress 104s;
* 7 (-06..-08): expiry key renamed ``max-age``; append responses carry
  ``Upload-Complete``; inconsistent-length problem type;
* 8 (-09..): limits always announced; DELETE need not answer 204.

Requests from drafts that no longer send the header are recognised by their
fields (``Upload-Complete`` on any request, ``Upload-Offset`` with
``application/partial-upload`` on PATCH) and get the newest behaviour, but no
``104``: a draft server must not send one without a matching interop version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from tusd_py.core import errors
from tusd_py.rufh import fields

#: The interop versions this server speaks.
INTEROP_VERSIONS: Final = (3, 4, 5, 6, 7, 8)
LATEST: Final = INTEROP_VERSIONS[-1]
PARTIAL_UPLOAD_TYPE: Final = "application/partial-upload"
INTEROP_HEADER: Final = "Upload-Draft-Interop-Version"


@dataclass(frozen=True, slots=True)
class Draft:
    """The draft behaviour one request asked for.

    ``interop`` is the version the request named, or None for a request that
    names none (newest drafts): it behaves as :data:`LATEST` without 104s.
    """

    interop: int | None

    @property
    def level(self) -> int:
        """The interop version whose rules apply."""
        return self.interop if self.interop is not None else LATEST

    @property
    def complete_field(self) -> str:
        """``Upload-Incomplete`` (inverted) for interop 3, else ``Upload-Complete``."""
        return "Upload-Incomplete" if self.level == 3 else "Upload-Complete"

    @property
    def needs_partial_type(self) -> bool:
        """Appends must be ``application/partial-upload`` (interop 6 on)."""
        return self.level >= 6

    @property
    def sends_interim(self) -> bool:
        """104 responses are allowed (the request named a version we speak)."""
        return self.interop is not None

    @property
    def sends_progress(self) -> bool:
        """104 responses with ``Upload-Offset`` while a body streams (interop 6 on)."""
        return self.sends_interim and self.level >= 6

    @property
    def expiry_key(self) -> str:
        """The ``Upload-Limit`` key of the remaining lifetime (``max-age`` from 7)."""
        return "expires" if self.level <= 6 else "max-age"

    def complete_header(self, complete: bool) -> tuple[str, str]:
        """The completeness field to send: name and serialised Boolean."""
        if self.level == 3:
            return self.complete_field, fields.boolean(not complete)
        return self.complete_field, fields.boolean(complete)

    def parse_complete(self, headers: Mapping[str, str]) -> bool | None:
        """The request's completeness (None when the field is absent)."""
        raw = headers.get(self.complete_field)
        if raw is None:
            return None
        value = fields.parse_boolean(self.complete_field, raw)
        return not value if self.level == 3 else value


def detect(method: str, headers: Mapping[str, str]) -> Draft | None:
    """The draft a request speaks, or None for tus (or anything else).

    A request carrying ``Tus-Resumable`` is tus, whatever else it has. Raises
    :class:`errors.UnsupportedVersion` (412) for an interop version this
    server does not speak.
    """
    if "Tus-Resumable" in headers:
        return None
    raw = headers.get(INTEROP_HEADER)
    if raw is not None:
        version = fields.parse_integer(INTEROP_HEADER, raw)
        if version not in INTEROP_VERSIONS:
            supported = ", ".join(str(v) for v in INTEROP_VERSIONS)
            raise errors.UnsupportedVersion(
                f"{INTEROP_HEADER} {version} is not supported; this server speaks {supported} (or tus 1.0.0)",
                headers={INTEROP_HEADER: str(LATEST)},
            )
        return Draft(version)
    if "Upload-Complete" in headers:
        return Draft(None)
    content_type = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if method == "PATCH" and content_type == PARTIAL_UPLOAD_TYPE and "Upload-Offset" in headers:
        return Draft(None)
    return None


#: Draft fields a browser client may send (CORS preflight), beside tus's.
CORS_ALLOW_HEADERS: Final = (
    "Upload-Complete",
    "Upload-Incomplete",
    INTEROP_HEADER,
    "Content-Digest",
    "Repr-Digest",
    "Want-Repr-Digest",
    "Content-Disposition",
)
#: Draft fields a browser client may read, beside tus's.
CORS_EXPOSE_HEADERS: Final = (
    "Upload-Complete",
    "Upload-Incomplete",
    "Upload-Limit",
    INTEROP_HEADER,
    "Repr-Digest",
)
