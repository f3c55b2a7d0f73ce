"""A tiny tus test client over Tornado's AsyncHTTPClient (no error raising)."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from tornado.httpclient import AsyncHTTPClient, HTTPResponse

TUS = {"Tus-Resumable": "1.0.0"}
PATCH_TYPE = {"Content-Type": "application/offset+octet-stream"}


def metadata(**pairs: str) -> str:
    """An Upload-Metadata header value."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


class Tus:
    """Requests against one server; every call returns the response, errors included."""

    def __init__(self, client: AsyncHTTPClient, base_url: str, base_path: str = "/files/") -> None:
        self.client = client
        self.base_url = base_url
        self.collection = base_url + base_path

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        tus: bool = True,
    ) -> HTTPResponse:
        all_headers = dict(TUS) if tus else {}
        all_headers.update(headers or {})
        if body is None and method in ("POST", "PATCH", "PUT"):
            body = b""
        return await self.client.fetch(
            url if url.startswith("http") else self.base_url + url,
            method=method,
            headers=all_headers,
            body=body,
            raise_error=False,
            allow_nonstandard_methods=True,
            follow_redirects=False,
            request_timeout=60,
        )

    async def create(
        self, length: int | None = None, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> HTTPResponse:
        h: dict[str, str] = {}
        if length is None:
            h["Upload-Defer-Length"] = "1"
        else:
            h["Upload-Length"] = str(length)
        if body:
            h.update(PATCH_TYPE)
        h.update(headers or {})
        return await self.request("POST", self.collection, h, body)

    async def create_url(self, length: int | None = None, **kw: object) -> str:
        res = await self.create(length, **kw)  # type: ignore[arg-type]
        assert res.code == 201, (res.code, res.body)
        return str(res.headers["Location"])

    async def patch(
        self, url: str, offset: int, data: bytes, headers: Mapping[str, str] | None = None
    ) -> HTTPResponse:
        h = {"Upload-Offset": str(offset), **PATCH_TYPE}
        h.update(headers or {})
        return await self.request("PATCH", url, h, data)

    async def head(self, url: str, headers: Mapping[str, str] | None = None) -> HTTPResponse:
        return await self.request("HEAD", url, headers)

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> HTTPResponse:
        return await self.request("GET", url, headers, tus=False)

    async def delete(self, url: str, headers: Mapping[str, str] | None = None) -> HTTPResponse:
        return await self.request("DELETE", url, headers)
