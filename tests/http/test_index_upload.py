"""POST /index: one-shot multipart and raw uploads streamed into tus uploads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.restapi import eventually, get_json, multipart_body, post_index
from tests.tusclient import Tus
from tusd_py.core import errors
from tusd_py.core.models import Principal
from tusd_py.ops.context import AppContext
from tusd_py.throttle.base import NullGuard, StreamSlot


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"server.max_size": 4 << 20}


def upload_files(data_dir: Path) -> list[Path]:
    root = data_dir / "uploads"
    return sorted(p for p in root.iterdir()) if root.exists() else []


async def assert_nothing_left(client: AsyncHTTPClient, base_url: str, data_dir: Path) -> None:
    """The refused upload is deleted (in the background, right after the answer)."""

    async def gone() -> bool:
        _, listing = await get_json(client, f"{base_url}/files/")
        return listing["items"] == [] and upload_files(data_dir) == []

    await eventually(gone, what="refused upload deleted")


@pytest.mark.gen_test
async def test_multipart_post_creates_upload_with_identical_bytes(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    data = os.urandom(300_000)
    body, ctype = multipart_body(data, filename="photo €.bin")
    res = await post_index(http_client, base_url, body, ctype)
    assert res.code == 201, res.body
    doc = json.loads(res.body)
    file_id = doc["file_id"]
    assert doc["status_url"] == f"/index-status/{file_id}"
    assert doc["upload_url"] == f"/files/{file_id}"
    assert doc["size"] == len(data) and doc["offset"] == len(data)
    assert doc["storage"] == "disk" and doc["state"] == "complete"
    assert doc["filename"] == "photo €.bin"
    assert res.headers["Location"].endswith(f"/files/{file_id}")
    got = await Tus(http_client, base_url).get(doc["upload_url"])
    assert got.code == 200 and got.body == data


@pytest.mark.gen_test
async def test_raw_post_creates_upload_with_identical_bytes(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    data = os.urandom(200_001)
    res = await post_index(
        http_client, base_url, data, "application/octet-stream", {"X-Filename": "r%C3%A9sum%C3%A9.pdf"}
    )
    assert res.code == 201, res.body
    doc = json.loads(res.body)
    assert doc["size"] == len(data) and doc["filename"] == "résumé.pdf"
    got = await Tus(http_client, base_url).get(doc["upload_url"])
    assert got.body == data
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in got.headers["Content-Disposition"]


@pytest.mark.gen_test
async def test_raw_chunked_body_gets_its_length_at_the_end(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    pieces = [os.urandom(50_000) for _ in range(5)]

    async def producer(write: Any) -> None:
        for piece in pieces:
            await write(piece)

    res = await http_client.fetch(
        f"{base_url}/index",
        method="POST",
        headers={"Content-Type": "application/octet-stream", "X-Filename": "chunks.bin"},
        body_producer=producer,
        raise_error=False,
    )
    assert res.code == 201, res.body
    doc = json.loads(res.body)
    assert doc["size"] == 250_000 and doc["state"] == "complete"
    got = await Tus(http_client, base_url).get(doc["upload_url"])
    assert got.body == b"".join(pieces)


@pytest.mark.gen_test
async def test_empty_raw_body_is_a_complete_empty_upload(http_client: AsyncHTTPClient, base_url: str) -> None:
    res = await post_index(http_client, base_url, b"", "application/octet-stream", {"X-Filename": "e"})
    assert res.code == 201
    assert json.loads(res.body)["size"] == 0
    code, status = await get_json(http_client, base_url + json.loads(res.body)["status_url"])
    assert code == 200 and status["state"] == "complete" and status["percent"] == 100.0


@pytest.mark.gen_test
async def test_empty_multipart_file_is_a_complete_empty_upload(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    body, ctype = multipart_body(b"")
    res = await post_index(http_client, base_url, body, ctype)
    assert res.code == 201, res.body
    assert json.loads(res.body)["size"] == 0


@pytest.mark.gen_test
async def test_other_content_types_are_refused(
    http_client: AsyncHTTPClient, base_url: str, data_dir: Path
) -> None:
    res = await post_index(http_client, base_url, b"{}", "application/json")
    assert res.code == 415
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_CONTENT_TYPE"
    assert upload_files(data_dir) == []


@pytest.mark.gen_test
async def test_multipart_without_file_field_is_400_and_leaves_nothing(
    http_client: AsyncHTTPClient, base_url: str, data_dir: Path
) -> None:
    body, ctype = multipart_body(b"some bytes", field="attachment")
    res = await post_index(http_client, base_url, body, ctype)
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_MULTIPART"
    await assert_nothing_left(http_client, base_url, data_dir)


@pytest.mark.gen_test
async def test_multipart_without_boundary_is_400(http_client: AsyncHTTPClient, base_url: str) -> None:
    res = await post_index(http_client, base_url, b"x", "multipart/form-data")
    assert res.code == 400 and json.loads(res.body)["error"]["code"] == "ERR_INVALID_MULTIPART"


@pytest.mark.gen_test
async def test_raw_body_over_the_limit_is_413_before_any_byte(
    http_client: AsyncHTTPClient, base_url: str, data_dir: Path
) -> None:
    res = await post_index(http_client, base_url, b"x" * ((4 << 20) + 1), "application/octet-stream")
    assert res.code == 413
    assert json.loads(res.body)["error"]["code"] == "ERR_MAX_SIZE_EXCEEDED"
    assert upload_files(data_dir) == []


@pytest.mark.gen_test
async def test_multipart_file_over_the_limit_is_413_while_streaming_and_deleted(
    http_client: AsyncHTTPClient, base_url: str, data_dir: Path
) -> None:
    body, ctype = multipart_body(os.urandom((4 << 20) + 10))
    res = await post_index(http_client, base_url, body, ctype)
    assert res.code == 413
    assert json.loads(res.body)["error"]["code"] == "ERR_MAX_SIZE_EXCEEDED"
    await assert_nothing_left(http_client, base_url, data_dir)


@pytest.mark.gen_test
async def test_bad_idempotency_key_is_400(http_client: AsyncHTTPClient, base_url: str) -> None:
    res = await post_index(
        http_client, base_url, b"x", "application/octet-stream", {"Idempotency-Key": "has space"}
    )
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_IDEMPOTENCY_KEY"


class BusyGuard(NullGuard):
    """Refuses every body stream, as a server at its stream cap does."""

    async def open_stream(self, principal: Principal, client_ip: str) -> StreamSlot:
        raise errors.ServerBusy("no stream slot free", retry_after=1)


@pytest.mark.gen_test
async def test_refused_stream_slot_leaves_no_upload(
    http_client: AsyncHTTPClient, base_url: str, data_dir: Path, ctx: AppContext
) -> None:
    ctx.guard = BusyGuard()
    res = await post_index(
        http_client, base_url, b"x" * 1000, "application/octet-stream", {"Idempotency-Key": "k"}
    )
    assert res.code == 503 and json.loads(res.body)["error"]["code"] == "ERR_SERVER_BUSY"
    await assert_nothing_left(http_client, base_url, data_dir)
    ctx.guard = NullGuard()
    again = await post_index(
        http_client, base_url, b"x" * 1000, "application/octet-stream", {"Idempotency-Key": "k"}
    )
    assert again.code == 201 and "Idempotent-Replayed" not in again.headers
