"""A blocking tus client for tests that drive server subprocesses from threads
(standard library only; every call has a timeout)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = {"Content-Type": "application/offset+octet-stream"}


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def _split(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname == "127.0.0.1", url  # loopback only
    return parts.hostname, int(parts.port or 80), parts.path or "/"


def on(base_url: str, upload_url: str) -> str:
    """``upload_url`` addressed to the instance at ``base_url``."""
    return base_url + urllib.parse.urlsplit(upload_url).path


def request(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 60.0,
) -> Response:
    host, port, path = _split(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={**TUS, **(headers or {})})
        res = conn.getresponse()
        data = res.read()
        return Response(res.status, {k.lower(): v for k, v in res.getheaders()}, data)
    finally:
        conn.close()


def create(files_url: str, length: int) -> str:
    res = request("POST", files_url, {"Upload-Length": str(length)})
    assert res.status == 201, (res.status, res.body)
    location = res.header("Location")
    assert location
    return location


def head(url: str) -> Response:
    return request("HEAD", url)


def offset_of(url: str) -> int:
    res = head(url)
    assert res.status == 200, (res.status, res.headers)
    return int(res.headers["upload-offset"])


def patch(url: str, offset: int, data: bytes, timeout: float = 60.0) -> Response:
    return request("PATCH", url, {"Upload-Offset": str(offset), **PATCH_TYPE}, data, timeout=timeout)


def get(url: str) -> Response:
    return request("GET", url)


def poll(check: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> None:
    """Wait until ``check()`` is true (bounded)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def resume(urls: list[str], data: bytes, *, chunk: int = 1 << 20, attempts: int = 200) -> list[int]:
    """Upload the rest of ``data`` like a resuming client: HEAD, PATCH from the
    offset, retry on 409/423/5xx and cut connections, rotating over ``urls``
    (the same upload on several instances). Returns the statuses seen."""
    seen: list[int] = []
    for attempt in range(attempts):
        url = urls[attempt % len(urls)]
        try:
            res = head(url)
            seen.append(res.status)
            if res.status != 200:
                time.sleep(0.1)
                continue
            offset = int(res.headers["upload-offset"])
            if offset == len(data):
                return seen
            res = patch(url, offset, data[offset : offset + chunk])
            seen.append(res.status)
            if res.status not in (204, 409, 423) and res.status < 500:
                raise AssertionError(f"unexpected {res.status}: {res.body!r}")
            if res.status != 204:
                time.sleep(0.1)
        except (OSError, http.client.HTTPException):
            seen.append(0)
            time.sleep(0.1)
    raise AssertionError(f"upload did not finish after {attempts} attempts: {seen[-20:]}")


def race_patches(urls: list[str], offset: int, payloads: list[bytes]) -> list[int]:
    """PATCH ``payloads[i]`` to ``urls[i]`` at ``offset``, all at once (threads
    released by a barrier). Returns the statuses; 0 = connection cut."""
    barrier = threading.Barrier(len(urls))
    statuses = [-1] * len(urls)

    def send(index: int) -> None:
        barrier.wait(10)
        try:
            statuses[index] = patch(urls[index], offset, payloads[index]).status
        except (OSError, http.client.HTTPException):
            statuses[index] = 0  # cut by another request's release request

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert -1 not in statuses, statuses
    return statuses


class StreamingPatch:
    """A PATCH whose body is sent piece by piece, so tests can hold it open."""

    def __init__(self, url: str, offset: int, length: int, timeout: float = 30.0) -> None:
        host, port, path = _split(url)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        head_lines = [
            f"PATCH {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Tus-Resumable: 1.0.0",
            "Content-Type: application/offset+octet-stream",
            f"Upload-Offset: {offset}",
            f"Content-Length: {length}",
        ]
        self.sock.sendall(("\r\n".join(head_lines) + "\r\n\r\n").encode())
        self.sent = 0
        self._buf = b""
        self._eof = False

    def send(self, data: bytes) -> bool:
        """Send more body; False if the server has closed the connection."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.sent += len(data)
        return True

    def _read(self, timeout: float) -> bool:
        """Read what the server sent within ``timeout``; True if anything
        arrived or the connection ended."""
        if self._eof:
            return True
        self.sock.settimeout(timeout)
        try:
            piece = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            self._eof = True
            return True
        if not piece:
            self._eof = True
        self._buf += piece
        return True

    def closed_by_server(self, timeout: float) -> bool:
        """True if the server answers or closes the connection within ``timeout``."""
        return self._read(timeout)

    def status(self, timeout: float = 30.0) -> int | None:
        """The response status, or None if the connection ended without one."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self._buf and not self._eof and len(self._buf) < 65536:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._read(left)
        if not self._buf.startswith(b"HTTP/1.1 "):
            return None
        return int(self._buf.split(b" ", 2)[1])

    def close(self) -> None:
        self.sock.close()
