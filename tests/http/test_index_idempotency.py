"""POST /index with Idempotency-Key: retries return the same upload; a body cut
mid-way is finished with tus PATCH at the upload_url the retry answers."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.restapi import (
    bearer,
    eventually,
    get_json,
    multi_user_ctx,
    multipart_parts,
    open_raw,
    post_index,
    request_head,
)
from tests.tusclient import Tus
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

RAW = "application/octet-stream"


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from multi_user_ctx(io_loop, tus_config)


ALICE = bearer("alice")
BOB = bearer("bob")


@pytest.mark.gen_test
async def test_retry_with_same_key_returns_same_upload(http_client: AsyncHTTPClient, base_url: str) -> None:
    data = os.urandom(50_000)
    headers = {**ALICE, "Idempotency-Key": "order-42", "X-Filename": "a.bin"}
    first = await post_index(http_client, base_url, data, RAW, headers)
    assert first.code == 201, first.body
    again = await post_index(http_client, base_url, data, RAW, headers)
    assert again.code == 201
    assert json.loads(again.body)["file_id"] == json.loads(first.body)["file_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other_key = await post_index(http_client, base_url, data, RAW, {**ALICE, "Idempotency-Key": "order-43"})
    assert json.loads(other_key.body)["file_id"] != json.loads(first.body)["file_id"]
    # Keys are per user: bob's "order-42" is his own upload.
    bobs = await post_index(http_client, base_url, data, RAW, {**BOB, "Idempotency-Key": "order-42"})
    assert bobs.code == 201 and "Idempotent-Replayed" not in bobs.headers
    assert json.loads(bobs.body)["file_id"] != json.loads(first.body)["file_id"]
    _, listing = await get_json(http_client, f"{base_url}/files/", ALICE)
    assert len(listing["items"]) == 2


@pytest.mark.gen_test
async def test_concurrent_requests_with_same_key_share_one_upload(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    data = os.urandom(300_000)
    headers = {**ALICE, "Idempotency-Key": "race"}
    results = await asyncio.gather(*(post_index(http_client, base_url, data, RAW, headers) for _ in range(4)))
    assert {r.code for r in results} <= {201, 409}
    assert len({json.loads(r.body)["file_id"] for r in results}) == 1

    async def settled() -> bool:
        _, listing = await get_json(http_client, f"{base_url}/files/", ALICE)
        return len(listing["items"]) == 1

    await eventually(settled, what="losing uploads deleted")


async def send_cut_request(base_url: str, head: bytes, body_part: bytes) -> None:
    """Send a request head and part of its body, then close the connection."""
    stream = await open_raw(base_url)
    await stream.write(head)
    await stream.write(body_part)
    stream.close()


async def offset_reaches(client: AsyncHTTPClient, base_url: str, file_id: str, offset: int) -> None:
    async def reached() -> bool:
        _, status = await get_json(client, f"{base_url}/index-status/{file_id}", ALICE)
        return bool(status["offset"] == offset)

    await eventually(reached, what=f"offset {offset}")


@pytest.mark.gen_test
async def test_cut_raw_post_is_finished_with_tus_patch(http_client: AsyncHTTPClient, base_url: str) -> None:
    data = os.urandom(400_000)
    sent = 150_000
    key = {"Idempotency-Key": "cut-raw", "X-Filename": "cut.bin"}
    head = request_head(
        "POST",
        "/index",
        {**ALICE, **key, "Content-Type": RAW, "Content-Length": str(len(data))},
    )
    await send_cut_request(base_url, head, data[:sent])

    # The retry (a client that knows no tus) learns where the upload stands.
    async def retry_says_incomplete() -> bool:
        res = await post_index(http_client, base_url, data, RAW, {**ALICE, **key})
        return res.code == 409 and json.loads(res.body)["offset"] == sent

    await eventually(retry_says_incomplete, what="409 with the bytes of the cut request")
    res = await post_index(http_client, base_url, data, RAW, {**ALICE, **key})
    doc = json.loads(res.body)
    assert doc["error"]["code"] == "ERR_UPLOAD_INCOMPLETE"
    assert doc["size"] == len(data) and doc["upload_url"] == f"/files/{doc['file_id']}"
    tus = Tus(http_client, base_url)
    head_res = await tus.head(doc["upload_url"], ALICE)
    assert head_res.headers["Upload-Offset"] == str(sent)
    patch = await tus.patch(doc["upload_url"], sent, data[sent:], ALICE)
    assert patch.code == 204, patch.body
    got = await tus.get(doc["upload_url"], ALICE)
    assert got.code == 200 and got.body == data
    replay = await post_index(http_client, base_url, data, RAW, {**ALICE, **key})
    assert replay.code == 201 and json.loads(replay.body)["state"] == "complete"


@pytest.mark.gen_test
async def test_cut_multipart_post_is_finished_with_tus_patch(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    data = os.urandom(300_000)
    sent = 120_000
    prefix, suffix, boundary = multipart_parts(data, filename="form.bin")
    ctype = f"multipart/form-data; boundary={boundary}"
    key = {"Idempotency-Key": "cut-form"}
    length = len(prefix) + len(data) + len(suffix)
    head = request_head(
        "POST", "/index", {**ALICE, **key, "Content-Type": ctype, "Content-Length": str(length)}
    )
    await send_cut_request(base_url, head, prefix + data[:sent])

    async def retry_says_incomplete() -> bool:
        res = await post_index(http_client, base_url, prefix + data + suffix, ctype, {**ALICE, **key})
        return res.code == 409 and json.loads(res.body)["offset"] == sent

    await eventually(retry_says_incomplete, what="409 with the file bytes of the cut request")
    res = await post_index(http_client, base_url, prefix + data + suffix, ctype, {**ALICE, **key})
    doc = json.loads(res.body)
    assert doc["size"] is None and doc["filename"] == "form.bin"
    tus = Tus(http_client, base_url)
    patch = await tus.patch(doc["upload_url"], sent, data[sent:], {**ALICE, "Upload-Length": str(len(data))})
    assert patch.code == 204, patch.body
    got = await tus.get(doc["upload_url"], ALICE)
    assert got.body == data
    _, status = await get_json(http_client, base_url + doc["status_url"], ALICE)
    assert status["state"] == "complete" and status["size"] == len(data)
