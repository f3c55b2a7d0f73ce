"""Server-side checks of the browser tests (plain HTTP with the user's token)."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Page

MIB = 1 << 20


def request(
    url: str, method: str = "GET", token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request; ``(status, lower-cased headers, body)``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    sent = {"Tus-Resumable": "1.0.0", **(headers or {})}
    if token:
        sent["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers=sent)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def upload_sha256(url: str, token: str) -> tuple[int, str]:
    """``(length, sha256)`` of the complete upload at ``url``, downloaded with ``token``."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    try:
        conn.request("GET", parts.path, headers={"Authorization": f"Bearer {token}"})
        res = conn.getresponse()
        assert res.status == 200, (res.status, res.read()[:300])
        digest = hashlib.sha256()
        length = 0
        while block := res.read(MIB):
            digest.update(block)
            length += len(block)
        return length, digest.hexdigest()
    finally:
        conn.close()


def listing(origin: str, token: str) -> list[dict[str, Any]]:
    """The user's uploads (first page of ``GET /files/``)."""
    status, _, body = request(f"{origin}/files/?limit=100", token=token)
    assert status == 200, body[:300]
    items: list[dict[str, Any]] = json.loads(body)["items"]
    return items


def by_name(origin: str, token: str, name: str) -> dict[str, Any]:
    """The one upload of the user called ``name``."""
    found = [d for d in listing(origin, token) if d["filename"] == name]
    assert len(found) == 1, found
    return found[0]


def until(page: Page, predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll ``predicate`` while letting Playwright dispatch events (route handlers
    run only while the sync API waits); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        page.wait_for_timeout(25)
    return value


def patch(url: str, token: str, offset: int, body: bytes) -> int:
    """One tus PATCH of ``body`` at ``offset``; the status."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    headers = {
        "Tus-Resumable": "1.0.0",
        "Authorization": f"Bearer {token}",
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    try:
        conn.request("PATCH", parts.path, body=body, headers=headers)
        res = conn.getresponse()
        res.read()
        return res.status
    finally:
        conn.close()
