"""GET /index-status/{id}: live progress from another connection, ownership, states."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.restapi import bearer, get_json, multi_user_ctx, open_raw, post_index, request_head
from tests.tusclient import Tus
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

ALICE = bearer("alice")
BOB = bearer("bob")
ADMIN = bearer("root", "admin")
LENGTH = 16 << 20
PIECE = 64 << 10


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"server.progress_interval": 0.01}


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from multi_user_ctx(io_loop, tus_config)


async def find_streaming_upload(client: AsyncHTTPClient, base_url: str) -> str | None:
    _, listing = await get_json(client, f"{base_url}/files/?state=uploading", ALICE)
    items = listing["items"]
    return str(items[0]["file_id"]) if items else None


@pytest.mark.parametrize("via", ["patch", "index"])
@pytest.mark.gen_test(timeout=120)
async def test_status_shows_offset_and_percent_growing_while_body_streams(
    http_client: AsyncHTTPClient, base_url: str, via: str
) -> None:
    data = os.urandom(PIECE) * (LENGTH // PIECE)
    file_id: str | None = None
    if via == "patch":
        url = await Tus(http_client, base_url).create_url(LENGTH, headers=ALICE)
        file_id = url.rsplit("/", 1)[-1]
        head = request_head(
            "PATCH",
            f"/files/{file_id}",
            {
                **ALICE,
                "Tus-Resumable": "1.0.0",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
                "Content-Length": str(LENGTH),
            },
        )
    else:
        head = request_head(
            "POST",
            "/index",
            {**ALICE, "Content-Type": "application/octet-stream", "Content-Length": str(LENGTH)},
        )
    stream = await open_raw(base_url)
    await stream.write(head)
    seen: list[tuple[int, float]] = []
    sent = 0
    # Bounded by the body: each round sends one piece and polls once from
    # another connection; stop once three distinct partial offsets were seen.
    while sent < LENGTH and len(seen) < 3:
        await stream.write(data[sent : sent + PIECE])
        sent += PIECE
        if file_id is None:
            file_id = await find_streaming_upload(http_client, base_url)
            continue
        code, status = await get_json(http_client, f"{base_url}/index-status/{file_id}", ALICE)
        assert code == 200 and status["state"] == "uploading" and status["size"] == LENGTH
        assert status["offset"] <= sent
        if 0 < status["offset"] < LENGTH and (not seen or status["offset"] != seen[-1][0]):
            seen.append((status["offset"], status["percent"]))
    assert len(seen) == 3, f"saw only {seen} before the body was sent"
    offsets = [s[0] for s in seen]
    percents = [s[1] for s in seen]
    assert offsets == sorted(offsets) and percents == sorted(percents) and percents[0] < percents[-1]
    assert all(abs(p - o * 100 / LENGTH) < 0.01 for o, p in seen)
    await stream.write(data[sent:])
    response = await stream.read_until(b"\r\n\r\n")
    assert response.split(b" ", 2)[1] in (b"201", b"204"), response
    stream.close()
    code, status = await get_json(http_client, f"{base_url}/index-status/{file_id}", ALICE)
    assert status["state"] == "complete" and status["offset"] == LENGTH and status["percent"] == 100.0


@pytest.mark.gen_test
async def test_status_document_and_ownership(http_client: AsyncHTTPClient, base_url: str) -> None:
    res = await post_index(
        http_client,
        base_url,
        b"%PDF-1.4\n" + b"0" * 100,
        "application/octet-stream",
        {**ALICE, "X-Filename": "a.pdf"},
    )
    file_id = json.loads(res.body)["file_id"]
    url = f"{base_url}/index-status/{file_id}"
    code, status = await get_json(http_client, url, ALICE)
    assert code == 200
    assert set(status) >= {
        "file_id",
        "filename",
        "size",
        "offset",
        "percent",
        "state",
        "storage",
        "created_at",
        "updated_at",
        "expires_at",
        "mime",
        "checksum",
        "jobs",
    }
    assert status["filename"] == "a.pdf" and status["mime"] == "application/pdf"
    assert status["state"] == "complete" and status["storage"] == "disk" and status["jobs"] == []
    assert status["expires_at"] is None and status["created_at"].endswith("Z")
    code, body = await get_json(http_client, url, BOB)
    assert code == 404 and body["error"]["code"] == "ERR_UPLOAD_NOT_FOUND"
    code, _ = await get_json(http_client, url, ADMIN)
    assert code == 200
    code, _ = await get_json(http_client, url)
    assert code == 401
    code, _ = await get_json(http_client, f"{base_url}/index-status/{'0' * 32}", ALICE)
    assert code == 404
    code, _ = await get_json(http_client, f"{base_url}/index-status/../etc", ALICE)
    assert code == 404


@pytest.mark.gen_test
async def test_status_of_an_expired_upload(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext
) -> None:
    url = await Tus(http_client, base_url).create_url(100, headers=ALICE)
    file_id = url.rsplit("/", 1)[-1]
    await ctx.composer.state.update(file_id, {"expires_at": 1.0})
    code, status = await get_json(http_client, f"{base_url}/index-status/{file_id}", ALICE)
    assert code == 200 and status["state"] == "expired"
    assert (await get_json(http_client, f"{base_url}/index-status/{file_id}", BOB))[0] == 404
    await ctx.service.sweep_expired()
    code, status = await get_json(http_client, f"{base_url}/index-status/{file_id}", ALICE)
    assert code == 200 and status["state"] == "expired"
