"""Creation-with-upload (TUS-CHECKLIST §1.4 lines 46–49; 50 is in
``test_expect_continue.py``, 51 in ``test_patch_interrupted.py``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import PATCH_TYPE, TUS, Tus


@pytest.mark.gen_test
async def test_line47_post_with_body_stores_it(tus: Tus, stored: Stored, base_url: str) -> None:
    res = await tus.create(10, body=b"hello")
    assert res.code == 201
    assert res.headers["Location"].startswith(base_url + "/files/")
    assert res.headers["Upload-Offset"] == "5"
    assert res.headers["Upload-Expires"].endswith("GMT")
    url = res.headers["Location"]
    assert stored.content(upload_id_of(url)) == b"hello"
    res = await tus.patch(url, 5, b"world")
    assert res.code == 204 and res.headers["Upload-Offset"] == "10"


@pytest.mark.gen_test
async def test_line47_whole_upload_in_the_post(tus: Tus) -> None:
    res = await tus.create(5, body=b"12345")
    assert res.code == 201 and res.headers["Upload-Offset"] == "5"
    assert "Upload-Expires" not in res.headers  # complete
    got = await tus.get(res.headers["Location"])
    assert got.body == b"12345"


@pytest.mark.gen_test
async def test_post_with_body_and_deferred_length(tus: Tus) -> None:
    res = await tus.create(None, body=b"abc")
    assert res.code == 201 and res.headers["Upload-Offset"] == "3"
    head = await tus.head(res.headers["Location"])
    assert head.headers["Upload-Defer-Length"] == "1"
    assert head.headers["Upload-Offset"] == "3"


@pytest.mark.parametrize("content_type", ["application/octet-stream", "text/plain", None])
@pytest.mark.gen_test
async def test_line48_body_with_other_content_type_is_415(
    tus: Tus, stored: Stored, content_type: str | None
) -> None:
    headers = {"Upload-Length": "5"}
    if content_type:
        headers["Content-Type"] = content_type
    res = await tus.request("POST", tus.collection, headers, b"hello")
    assert res.code == 415
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_CONTENT_TYPE"
    assert await stored.ids() == []
    assert stored.files() == []


@pytest.mark.gen_test
async def test_line49_body_larger_than_length_is_413_and_nothing_created(tus: Tus, stored: Stored) -> None:
    res = await tus.create(3, body=b"hello")
    assert res.code == 413
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_SIZE_EXCEEDED"
    assert "Location" not in res.headers
    assert await stored.ids() == []


@pytest.mark.gen_test
async def test_line49_chunked_body_larger_than_length_keeps_location(
    http_client: AsyncHTTPClient, tus: Tus, stored: Stored
) -> None:
    """Without Content-Length the upload exists before the excess shows: the
    413 carries its Location and the bytes that fit are kept (like tusd)."""

    async def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
        await write(b"abc")
        await write(b"defg")

    res = await http_client.fetch(
        tus.collection,
        method="POST",
        headers={**TUS, **PATCH_TYPE, "Upload-Length": "5"},
        body_producer=producer,
        raise_error=False,
    )
    assert res.code == 413
    url = res.headers["Location"]
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "5"
    assert stored.content(upload_id_of(url)) == b"abcde"


class TestMaxSize:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_size": 4}

    @pytest.mark.gen_test
    async def test_deferred_post_body_beyond_max_size_is_413(self, tus: Tus, stored: Stored) -> None:
        res = await tus.create(None, body=b"hello")
        assert res.code == 413
        assert json.loads(res.body)["error"]["code"] == "ERR_MAX_SIZE_EXCEEDED"
