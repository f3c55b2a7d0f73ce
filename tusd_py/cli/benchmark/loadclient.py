"""A blocking tus client for load generation (``http.client``, keep-alive).

Bodies are streamed in 1 MiB blocks sliced from a :class:`Pattern`, so an
upload of any size costs O(1 MiB) of client memory and byte ``i`` of an
upload with seed ``s`` is known without storing it (``Pattern.sha256``
checks what a server stored). One :class:`LoadClient` is one connection;
use one per thread.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import random
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

TUS_VERSION = "1.0.0"
BLOCK = 1 << 20
#: Not a power of two, so pattern blocks never line up with chunk boundaries.
PATTERN_LEN = BLOCK + 4099


class LoadError(Exception):
    """A request failed or a server answered something a tus server must not."""


class Pattern:
    """Byte ``i`` of an upload with seed ``s`` is ``P_s[i % PATTERN_LEN]``."""

    def __init__(self, seed: int) -> None:
        data = random.Random(seed).randbytes(PATTERN_LEN)
        self._view = memoryview(data + data)

    def blocks(self, start: int, end: int, block: int = BLOCK) -> Iterator[memoryview]:
        """Bytes ``[start, end)`` as views of at most ``block`` bytes."""
        position = start
        while position < end:
            n = min(block, end - position, PATTERN_LEN)
            i = position % PATTERN_LEN
            yield self._view[i : i + n]
            position += n

    def sha256(self, length: int) -> str:
        digest = hashlib.sha256()
        for view in self.blocks(0, length):
            digest.update(view)
        return digest.hexdigest()


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


class LoadClient:
    """Tus requests over one keep-alive connection to ``endpoint``'s host."""

    def __init__(
        self, endpoint: str, headers: Mapping[str, str] | None = None, timeout: float = 120.0
    ) -> None:
        parts = urllib.parse.urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadError(f"not an http(s) URL: {endpoint!r}")
        self.endpoint = endpoint
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> LoadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, url: str) -> str:
        parts = urllib.parse.urlsplit(urllib.parse.urljoin(self.endpoint, url))
        if (parts.hostname, parts.port or self._port) != (self._host, self._port):
            raise LoadError(f"{url!r} is on another host than {self.endpoint!r}")
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: Iterable[bytes | memoryview] | None = None,
        length: int = 0,
    ) -> Response:
        """Send one request with a body of ``length`` bytes from ``body``.

        A kept-alive connection the server closed is reopened once if no
        body byte was sent yet; other failures raise :class:`LoadError`.
        """
        path = self._path(url)
        for attempt in range(2):
            conn = self._connection()
            sent = 0
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)
                all_headers = {"Tus-Resumable": TUS_VERSION, **self._headers, **(headers or {})}
                if method in ("POST", "PATCH", "PUT", "DELETE") or length:
                    all_headers["Content-Length"] = str(length)
                for name, value in all_headers.items():
                    conn.putheader(name, value)
                conn.endheaders()
                for block in body or ():
                    conn.send(block)
                    sent += len(block)
                res = conn.getresponse()
                data = res.read()
                if res.will_close:
                    self.close()
                return Response(res.status, {k.lower(): v for k, v in res.getheaders()}, data)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if attempt == 0 and sent == 0:
                    continue
                raise LoadError(f"{method} {path}: {type(exc).__name__} after {sent} body bytes") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise LoadError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        raise LoadError(f"{method} {path}: connection closed twice")

    # --- tus operations -------------------------------------------------------

    def create(self, length: int, name: str = "bench.bin") -> str:
        """POST a new upload of ``length`` bytes; returns its absolute URL."""
        meta = "filename " + base64.b64encode(name.encode()).decode()
        res = self.request("POST", self.endpoint, {"Upload-Length": str(length), "Upload-Metadata": meta})
        location = res.headers.get("location")
        if res.status != 201 or not location:
            raise LoadError(f"POST: status {res.status}, body {res.body[:200]!r}")
        return urllib.parse.urljoin(self.endpoint, location)

    def offset(self, url: str) -> int:
        """HEAD ``url``; returns its ``Upload-Offset``."""
        res = self.request("HEAD", url)
        value = res.headers.get("upload-offset")
        if res.status != 200 or value is None or not value.isdigit():
            raise LoadError(f"HEAD: status {res.status}, Upload-Offset {value!r}")
        return int(value)

    def patch(self, url: str, pattern: Pattern, start: int, end: int) -> int:
        """PATCH bytes ``[start, end)`` of ``pattern``; returns the new offset."""
        res = self.request(
            "PATCH",
            url,
            {"Upload-Offset": str(start), "Content-Type": "application/offset+octet-stream"},
            body=pattern.blocks(start, end),
            length=end - start,
        )
        value = res.headers.get("upload-offset")
        if res.status not in (200, 204) or value != str(end):
            raise LoadError(f"PATCH @{start}: status {res.status}, offset {value!r}, body {res.body[:200]!r}")
        return end

    def delete(self, url: str) -> None:
        """Terminate ``url``; a failure is ignored (cleanup is best effort)."""
        try:
            self.request("DELETE", url)
        except LoadError:
            return None

    def upload(self, length: int, chunk: int, seed: int) -> str:
        """Create an upload and send it in PATCHes of ``chunk`` bytes (0 = one PATCH)."""
        url = self.create(length, name=f"bench-{seed}.bin")
        pattern = Pattern(seed)
        step = chunk if chunk > 0 else max(length, 1)
        position = 0
        while position < length:
            position = self.patch(url, pattern, position, min(position + step, length))
        return url
