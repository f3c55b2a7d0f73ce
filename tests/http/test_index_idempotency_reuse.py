"""POST /index: an Idempotency-Key reused with a different request is refused
with 422 ERR_IDEMPOTENCY_KEY_REUSED and nothing of that request is kept
(draft-ietf-httpapi-idempotency-key-header), on the SQLite and Redis state stores."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.http.conftest import Stored
from tests.restapi import bearer, get_json, multi_user_ctx, multipart_body, post_index
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

RAW = "application/octet-stream"
ALICE = bearer("alice")


@pytest.fixture(params=["sqlite", "redis"])
def config_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    redis_url = request.getfixturevalue("redis_url")
    return {"redis.url": redis_url, "redis.prefix": f"t{secrets.token_hex(4)}:"}


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from multi_user_ctx(io_loop, tus_config)


async def upload_ids(client: AsyncHTTPClient, base_url: str) -> list[str]:
    _, listing = await get_json(client, f"{base_url}/files/", ALICE)
    return [item["file_id"] for item in listing["items"]]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "change",
    [
        {"body": b"y" * 30_001},
        {"headers": {"X-Filename": "other.bin"}},
        {"headers": {"Content-Type": "multipart/form-data; boundary=zz"}},
        {"query": "?visibility=public"},
    ],
    ids=["length", "filename", "content-type", "visibility"],
)
async def test_key_reused_with_another_request_is_refused(
    http_client: AsyncHTTPClient, base_url: str, stored: Stored, change: dict[str, Any]
) -> None:
    data = os.urandom(30_000)
    headers = {**ALICE, "Idempotency-Key": "order-7", "X-Filename": "a.bin"}
    first = await post_index(http_client, base_url, data, RAW, headers)
    assert first.code == 201, first.body
    file_id = json.loads(first.body)["file_id"]
    files_before = stored.files()

    body = change.get("body", data)
    extra = change.get("headers", {})
    res = await post_index(
        http_client,
        base_url,
        body,
        extra.get("Content-Type", RAW),
        {**headers, **extra},
        change.get("query", ""),
    )
    assert res.code == 422, res.body
    error = json.loads(res.body)["error"]
    assert error["code"] == "ERR_IDEMPOTENCY_KEY_REUSED"
    assert "Idempotency-Key" in error["message"]
    # Nothing of the refused request was kept; the first upload is untouched.
    assert await upload_ids(http_client, base_url) == [file_id]
    assert stored.files() == files_before
    again = await post_index(http_client, base_url, data, RAW, headers)
    assert again.code == 201 and json.loads(again.body)["file_id"] == file_id


@pytest.mark.gen_test
async def test_multipart_retry_with_new_boundary_is_the_same_request(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    data = os.urandom(20_000)
    headers = {**ALICE, "Idempotency-Key": "form-1"}
    body, ctype = multipart_body(data, filename="f.bin")
    first = await post_index(http_client, base_url, body, ctype, headers)
    assert first.code == 201, first.body
    body2, ctype2 = multipart_body(data, filename="f.bin")
    assert ctype2 != ctype and len(body2) == len(body)
    again = await post_index(http_client, base_url, body2, ctype2, headers)
    assert again.code == 201, again.body
    assert json.loads(again.body)["file_id"] == json.loads(first.body)["file_id"]


def test_requests_client_receives_the_refusal(base_url: str, io_loop: tornado.ioloop.IOLoop) -> None:
    """A plain ``requests`` client (the body not yet read by the server) sees the 422."""

    async def post(data: bytes) -> requests.Response:
        def send() -> requests.Response:
            return requests.post(
                f"{base_url}/index",
                data=data,
                headers={**ALICE, "Content-Type": RAW, "Idempotency-Key": "rq", "X-Filename": "r.bin"},
                timeout=30,
            )

        return await tornado.ioloop.IOLoop.current().run_in_executor(None, send)

    first = io_loop.run_sync(lambda: post(b"a" * 10_000), timeout=30)
    assert first.status_code == 201, first.text
    second = io_loop.run_sync(lambda: post(b"b" * 200_000), timeout=30)
    assert second.status_code == 422, second.text
    assert second.json()["error"]["code"] == "ERR_IDEMPOTENCY_KEY_REUSED"
