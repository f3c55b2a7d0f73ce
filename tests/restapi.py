"""Helpers for REST API tests: multipart bodies, a header authenticator, raw sockets."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.iostream import IOStream
from tornado.tcpclient import TCPClient

from tusd_py.cli.server import build_context
from tusd_py.core import auth_errors
from tusd_py.core.config import Config
from tusd_py.core.models import Principal
from tusd_py.ops.context import AppContext


class HeaderAuthenticator:
    """Test stand-in for JWT: ``Authorization: Bearer <user>[:<tier>]``.

    Lets HTTP tests act as several users while real JWT auth is another
    issue's work; no header means anonymous (401 where a user is needed)."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        value = headers.get("Authorization")
        if value is None:
            return None
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise auth_errors.Unauthenticated("bad test token")
        user, _, tier = token.partition(":")
        return Principal(user=user, tier=tier or "basic")


def bearer(user: str, tier: str = "basic") -> dict[str, str]:
    return {"Authorization": f"Bearer {user}:{tier}"}


def multi_user_ctx(io_loop: tornado.ioloop.IOLoop, config: Config) -> Iterator[AppContext]:
    """An :class:`AppContext` whose callers are named by :func:`bearer` headers."""
    context = io_loop.run_sync(lambda: build_context(config, authenticator=HeaderAuthenticator()))
    yield context
    io_loop.run_sync(lambda: context.lifecycle.join_tasks(10.0))
    io_loop.run_sync(context.aclose)


def multipart_parts(
    data: bytes,
    *,
    filename: str = "data.bin",
    field: str = "file",
    content_type: str = "application/octet-stream",
) -> tuple[bytes, bytes, str]:
    """``(prefix, suffix, boundary)``: a form with a text field, then the file."""
    boundary = "----tusdpy" + secrets.token_hex(8)
    prefix = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="note"\r\n\r\n'
        "a text field before the file\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    suffix = f"\r\n--{boundary}--\r\n".encode()
    return prefix, suffix, boundary


def multipart_body(data: bytes, **kw: Any) -> tuple[bytes, str]:
    """A whole multipart body carrying ``data`` and its Content-Type header."""
    prefix, suffix, boundary = multipart_parts(data, **kw)
    return prefix + data + suffix, f"multipart/form-data; boundary={boundary}"


async def post_index(
    client: AsyncHTTPClient,
    base_url: str,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
    query: str = "",
) -> HTTPResponse:
    return await client.fetch(
        f"{base_url}/index{query}",
        method="POST",
        headers={"Content-Type": content_type, **(headers or {})},
        body=body,
        raise_error=False,
        request_timeout=60,
    )


async def get_json(
    client: AsyncHTTPClient, url: str, headers: Mapping[str, str] | None = None
) -> tuple[int, Any]:
    res = await client.fetch(url, headers=dict(headers or {}), raise_error=False, request_timeout=60)
    return res.code, (json.loads(res.body) if res.body else None)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it returns True; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.02)


async def open_raw(base_url: str) -> IOStream:
    """A raw TCP connection to the test server (for requests cut mid-body)."""
    host, port = base_url.removeprefix("http://").split(":")
    return await TCPClient().connect(host, int(port))


def request_head(method: str, path: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
