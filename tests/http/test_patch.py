"""PATCH (TUS-CHECKLIST §1.1 lines 7, 10, 16–23; Upload-Expires line 53).

Interrupted bodies are in ``test_patch_interrupted.py``, concurrent requests
in ``test_locking.py``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.http.conftest import Stored, upload_id_of
from tests.http.raw import RawConnection
from tests.tusclient import PATCH_TYPE, TUS, Tus


def error_code(res: HTTPResponse) -> str:
    return str(json.loads(res.body)["error"]["code"])


async def assert_unchanged(tus: Tus, stored: Stored, url: str, offset: int, content: bytes) -> None:
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == str(offset)
    assert stored.content(upload_id_of(url)) == content


@pytest.mark.gen_test
async def test_line19_patch_returns_new_offset(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(10)
    res = await tus.patch(url, 0, b"0123")
    assert res.code == 204
    assert res.headers["Upload-Offset"] == "4"
    assert res.headers["Tus-Resumable"] == "1.0.0"
    res = await tus.patch(url, 4, b"456789")
    assert res.code == 204 and res.headers["Upload-Offset"] == "10"
    assert stored.content(upload_id_of(url)) == b"0123456789"


@pytest.mark.gen_test
async def test_line53_upload_expires_on_every_incomplete_patch(tus: Tus) -> None:
    url = await tus.create_url(4)
    res = await tus.patch(url, 0, b"ab")
    assert res.headers["Upload-Expires"].endswith(" GMT")
    res = await tus.patch(url, 2, b"cd")
    assert "Upload-Expires" not in res.headers  # complete now: it will not expire


@pytest.mark.parametrize(
    ("line", "headers", "status", "code"),
    [
        (7, {"Tus-Resumable": "0.2.2"}, 412, "ERR_UNSUPPORTED_VERSION"),
        (8, {"Tus-Resumable": None}, 412, "ERR_UNSUPPORTED_VERSION"),
        (16, {"Content-Type": "application/octet-stream"}, 415, "ERR_INVALID_CONTENT_TYPE"),
        (16, {"Content-Type": None}, 415, "ERR_INVALID_CONTENT_TYPE"),
        (17, {"Upload-Offset": None}, 400, "ERR_INVALID_OFFSET"),
        (10, {"Upload-Offset": "-1"}, 400, "ERR_INVALID_OFFSET"),
        (10, {"Upload-Offset": "abc"}, 400, "ERR_INVALID_OFFSET"),
        (10, {"Upload-Offset": "1.5"}, 400, "ERR_INVALID_OFFSET"),
        (10, {"Upload-Offset": ""}, 400, "ERR_INVALID_OFFSET"),
        (10, {"Upload-Offset": "0x0"}, 400, "ERR_INVALID_OFFSET"),
        (18, {"Upload-Offset": "2"}, 409, "ERR_MISMATCHED_OFFSET"),
        (18, {"Upload-Offset": "0"}, 409, "ERR_MISMATCHED_OFFSET"),
        (43, {"Upload-Length": "8"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (10, {"Upload-Length": "-8"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (59, {"Upload-Checksum": "sha1"}, 400, "ERR_INVALID_CHECKSUM"),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else None,
)
@pytest.mark.gen_test
async def test_refused_patch_leaves_upload_unchanged(
    tus: Tus,
    stored: Stored,
    line: int,
    headers: dict[str, str | None],
    status: int,
    code: str,
) -> None:
    """Lines 7, 8, 10, 16–18, 43, 59: the error, and nothing written."""
    url = await tus.create_url(10)
    assert (await tus.patch(url, 0, b"abc")).code == 204
    all_headers: dict[str, str | None] = {**TUS, **PATCH_TYPE, "Upload-Offset": "3", **headers}
    sent = {k: v for k, v in all_headers.items() if v is not None}
    res = await tus.request("PATCH", url, sent, b"XYZ", tus=False)
    assert res.code == status, res.body
    assert error_code(res) == code
    assert res.headers["Tus-Resumable"] == "1.0.0"
    if status == 412:
        assert res.headers["Tus-Version"] == "1.0.0"
    await assert_unchanged(tus, stored, url, 3, b"abc")


@pytest.mark.gen_test
async def test_line18_409_after_a_complete_patch(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(6)
    await tus.patch(url, 0, b"abc")
    res = await tus.patch(url, 0, b"xyz")
    assert res.code == 409
    assert "Upload-Offset" not in res.headers
    await assert_unchanged(tus, stored, url, 3, b"abc")


@pytest.mark.parametrize(
    "path", ["/files/0123456789abcdef0123456789abcdef", "/files/nope", "/files/..%2F..%2Fstate.db"]
)
@pytest.mark.gen_test
async def test_line20_patch_unknown_id_is_404(tus: Tus, base_url: str, stored: Stored, path: str) -> None:
    res = await tus.patch(base_url + path, 0, b"abc")
    assert res.code == 404
    assert error_code(res) == "ERR_UPLOAD_NOT_FOUND"
    assert stored.files() == []
    assert await stored.ids() == []


@pytest.mark.gen_test
async def test_line21_body_beyond_length_is_413_up_front(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(5)
    await tus.patch(url, 0, b"ab")
    res = await tus.patch(url, 2, b"cdefgh")
    assert res.code == 413
    assert error_code(res) == "ERR_UPLOAD_SIZE_EXCEEDED"
    await assert_unchanged(tus, stored, url, 2, b"ab")


def chunked(parts: list[bytes]) -> Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]:
    async def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
        for part in parts:
            await write(part)

    return producer


async def patch_chunked(
    client: AsyncHTTPClient, url: str, offset: int, parts: list[bytes], **headers: str
) -> HTTPResponse:
    return await client.fetch(
        url,
        method="PATCH",
        headers={**TUS, **PATCH_TYPE, "Upload-Offset": str(offset), **headers},
        body_producer=chunked(parts),
        raise_error=False,
        request_timeout=30,
    )


@pytest.mark.gen_test
async def test_line23_chunked_patch_accepted(http_client: AsyncHTTPClient, tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(9)
    res = await patch_chunked(http_client, url, 0, [b"abc", b"def", b"ghi"])
    assert res.code == 204
    assert res.headers["Upload-Offset"] == "9"
    assert stored.content(upload_id_of(url)) == b"abcdefghi"


@pytest.mark.gen_test
async def test_line21_chunked_body_beyond_length_keeps_only_what_fits(
    http_client: AsyncHTTPClient, tus: Tus, stored: Stored
) -> None:
    """A chunked body has no Content-Length to check up front: the bytes that
    fit are stored, the rest is refused with 413 and never written."""
    url = await tus.create_url(5)
    res = await patch_chunked(http_client, url, 0, [b"abc", b"defgh"])
    assert res.code == 413
    assert error_code(res) == "ERR_UPLOAD_SIZE_EXCEEDED"
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "5"
    assert stored.content(upload_id_of(url)) == b"abcde"


@pytest.mark.gen_test
async def test_line22_empty_patch_at_current_offset(tus: Tus) -> None:
    url = await tus.create_url(5)
    await tus.patch(url, 0, b"ab")
    res = await tus.patch(url, 2, b"")
    assert res.code == 204 and res.headers["Upload-Offset"] == "2"


@pytest.mark.gen_test
async def test_line22_patch_on_complete_upload_is_noop(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(3)
    await tus.patch(url, 0, b"abc")
    res = await tus.patch(url, 3, b"")
    assert res.code == 204 and res.headers["Upload-Offset"] == "3"
    res = await tus.patch(url, 3, b"d")
    assert res.code == 413
    await assert_unchanged(tus, stored, url, 3, b"abc")


class TestMaxSizeWhileDeferred:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_size": 6}

    @pytest.mark.gen_test
    async def test_line45_deferred_upload_capped_at_max_size(self, tus: Tus, stored: Stored) -> None:
        url = await tus.create_url(None)
        assert (await tus.patch(url, 0, b"abcd")).code == 204
        res = await tus.patch(url, 4, b"efg")
        assert res.code == 413
        assert error_code(res) == "ERR_MAX_SIZE_EXCEEDED"
        await assert_unchanged(tus, stored, url, 4, b"abcd")


@pytest.mark.gen_test
async def test_patch_body_over_several_reads(tus: Tus, stored: Stored) -> None:
    """A body larger than the read size (64 KiB in tests) arrives in several
    ``data_received`` calls and is stored in order."""
    data = bytes(range(256)) * 1024  # 256 KiB
    url = await tus.create_url(len(data))
    res = await tus.patch(url, 0, data)
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test
async def test_patch_with_content_length_mismatch_is_not_500(port: int, tus: Tus, stored: Stored) -> None:
    """A Content-Length that is not a number is rejected by the HTTP layer (400)."""
    url = await tus.create_url(5)
    conn = await RawConnection.open(port)
    try:
        path = "/files/" + upload_id_of(url)
        headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": "x"}
        await conn.send_request("PATCH", path, headers, b"abc")
        res = await conn.read_response()
        assert res.status == 400
    finally:
        await conn.aclose()
    await assert_unchanged(tus, stored, url, 0, b"")
