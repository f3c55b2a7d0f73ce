"""tus 1.0.0 requests as plain method calls: ``TusSession`` over a :class:`Transport`.

Each call sends one request and either returns what the protocol promises or
raises :class:`HttpStatusError` (with the server's ``{"error": {"code",
"message"}}`` and ``Retry-After`` when present) or :class:`TransportError`.
Retrying is the caller's business. Every request carries ``Tus-Resumable:
1.0.0`` and, when a token is set, ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin

from tusd_py.cli.client.errors import HttpStatusError, TransportError, UploadMissing
from tusd_py.cli.client.retry import parse_retry_after
from tusd_py.cli.client.transport import Body, Headers, Response, Transport

TUS_VERSION = "1.0.0"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"


@dataclass(frozen=True)
class UploadStatus:
    """What HEAD says about an upload."""

    offset: int | None
    length: int | None
    concat: str | None
    metadata: dict[str, str]

    @property
    def complete(self) -> bool:
        return self.length is not None and self.offset == self.length


def encode_metadata(pairs: Mapping[str, str]) -> str:
    """An ``Upload-Metadata`` value (``key base64(value)``, comma-separated)."""
    return ",".join(
        f"{key} {base64.b64encode(value.encode('utf-8')).decode('ascii')}" if value else key
        for key, value in pairs.items()
    )


def decode_metadata(header: str | None) -> dict[str, str]:
    """Best-effort parse of ``Upload-Metadata`` (undecodable values are skipped)."""
    result: dict[str, str] = {}
    for item in (header or "").split(","):
        fields = item.strip().split(" ")
        if not fields or not fields[0]:
            continue
        if len(fields) == 1:
            result[fields[0]] = ""
            continue
        try:
            result[fields[0]] = base64.b64decode(fields[1], validate=True).decode("utf-8", "replace")
        except ValueError:
            continue
    return result


def status_error(response: Response, method: str, url: str, sent: int = 0) -> HttpStatusError:
    """An :class:`HttpStatusError` from a failed ``response`` (its body is consumed)."""
    code = message = None
    try:
        body = response.read()
    except TransportError:
        body = b""
    if body:
        try:
            parsed = json.loads(body.decode("utf-8"))
            error = parsed.get("error") if isinstance(parsed, dict) else None
            if isinstance(error, dict):
                code = str(error.get("code")) if error.get("code") is not None else None
                message = str(error.get("message")) if error.get("message") is not None else None
        except ValueError:
            text = body.decode("utf-8", "replace").strip()
            message = text[:300] if text else None
    if message is None and response.reason:
        message = response.reason
    return HttpStatusError(
        response.status,
        code=code,
        message=message,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
        method=method,
        url=url,
        sent=sent,
    )


def _int_header(headers: Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


class TusSession:
    """tus requests with one set of credentials over one transport."""

    def __init__(self, transport: Transport, *, token: str | None = None) -> None:
        self.transport = transport
        self.token = token

    def headers(self, extra: Mapping[str, str] | None = None, *, tus: bool = True) -> dict[str, str]:
        result = {"Tus-Resumable": TUS_VERSION} if tus else {}
        if self.token:
            result["Authorization"] = f"Bearer {self.token}"
        result.update(extra or {})
        return result

    def options(self, endpoint: str) -> Headers:
        """The discovery headers of ``endpoint`` (Tus-Extension, Tus-Max-Size, ...)."""
        response = self.transport.request("OPTIONS", endpoint, self.headers())
        if response.status not in (200, 204):
            raise status_error(response, "OPTIONS", endpoint)
        response.read()
        return response.headers

    def create(
        self, endpoint: str, length: int, metadata: Mapping[str, str], *, partial: bool = False
    ) -> str:
        """POST a new upload of ``length`` bytes; returns its absolute URL."""
        extra = {"Upload-Length": str(length)}
        if metadata:
            extra["Upload-Metadata"] = encode_metadata(metadata)
        if partial:
            extra["Upload-Concat"] = "partial"
        return self._created(endpoint, self.transport.request("POST", endpoint, self.headers(extra)))

    def create_final(self, endpoint: str, partial_urls: Sequence[str], metadata: Mapping[str, str]) -> str:
        """POST the final upload concatenating ``partial_urls``; returns its absolute URL."""
        extra = {"Upload-Concat": "final;" + " ".join(partial_urls)}
        if metadata:
            extra["Upload-Metadata"] = encode_metadata(metadata)
        return self._created(endpoint, self.transport.request("POST", endpoint, self.headers(extra)))

    def _created(self, endpoint: str, response: Response) -> str:
        if response.status != 201:
            raise status_error(response, "POST", endpoint)
        response.read()
        location = response.headers.get("Location")
        if not location:
            raise TransportError(f"POST {endpoint} answered 201 without a Location header")
        return urljoin(endpoint, location)

    def head(self, url: str) -> UploadStatus:
        """HEAD ``url``. Raises :class:`UploadMissing` for 404/410."""
        response = self.transport.request("HEAD", url, self.headers({"Cache-Control": "no-store"}))
        if response.status in (404, 410):
            error = status_error(response, "HEAD", url)
            raise UploadMissing(error.status, code=error.code, message=error.message, method="HEAD", url=url)
        if response.status != 200:
            raise status_error(response, "HEAD", url)
        headers = response.headers
        return UploadStatus(
            offset=_int_header(headers, "Upload-Offset"),
            length=_int_header(headers, "Upload-Length"),
            concat=headers.get("Upload-Concat"),
            metadata=decode_metadata(headers.get("Upload-Metadata")),
        )

    def patch(
        self,
        url: str,
        offset: int,
        body: Body,
        *,
        checksum: str | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> int:
        """PATCH ``body`` at ``offset``; returns the server's new offset."""
        extra = {"Upload-Offset": str(offset), "Content-Type": OFFSET_CONTENT_TYPE}
        if checksum:
            extra["Upload-Checksum"] = checksum
        sent = 0

        def count(n: int) -> None:
            nonlocal sent
            sent += n
            if on_sent is not None:
                on_sent(n)

        response = self.transport.request("PATCH", url, self.headers(extra), body, count)
        if response.status not in (200, 204):
            raise status_error(response, "PATCH", url, sent)
        response.read()
        new_offset = _int_header(response.headers, "Upload-Offset")
        if new_offset is None:
            raise TransportError(f"PATCH {url} answered {response.status} without Upload-Offset", sent=sent)
        return new_offset

    def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """A GET (not a tus request); the caller reads or closes the response."""
        return self.transport.request("GET", url, self.headers(headers, tus=False))
