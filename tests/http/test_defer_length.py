"""Creation-defer-length (TUS-CHECKLIST §1.3 lines 40–45; 39 in test_options)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import Tus


@pytest.mark.gen_test
async def test_line40_head_of_deferred_upload(tus: Tus) -> None:
    res = await tus.create(None)
    assert res.code == 201
    head = await tus.head(res.headers["Location"])
    assert head.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in head.headers
    assert head.headers["Upload-Offset"] == "0"


@pytest.mark.parametrize("value", ["2", "0", "true", "", "1.0", "-1"])
@pytest.mark.gen_test
async def test_line41_defer_length_other_than_1_is_400(tus: Tus, stored: Stored, value: str) -> None:
    res = await tus.request("POST", tus.collection, {"Upload-Defer-Length": value})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_UPLOAD_LENGTH"
    assert await stored.ids() == []


@pytest.mark.gen_test
async def test_line42_first_patch_declares_the_length(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(None)
    res = await tus.patch(url, 0, b"abc", headers={"Upload-Length": "8"})
    assert res.code == 204 and res.headers["Upload-Offset"] == "3"
    head = await tus.head(url)
    assert head.headers["Upload-Length"] == "8"
    assert "Upload-Defer-Length" not in head.headers
    res = await tus.patch(url, 3, b"defgh")
    assert res.code == 204 and res.headers["Upload-Offset"] == "8"
    assert (await tus.get(url)).body == b"abcdefgh"


@pytest.mark.gen_test
async def test_line42_length_declared_after_some_patches(tus: Tus) -> None:
    url = await tus.create_url(None)
    assert (await tus.patch(url, 0, b"ab")).code == 204
    assert (await tus.patch(url, 2, b"cd")).code == 204
    res = await tus.patch(url, 4, b"", headers={"Upload-Length": "4"})
    assert res.code == 204
    head = await tus.head(url)
    assert head.headers["Upload-Length"] == "4" and head.headers["Upload-Offset"] == "4"
    assert (await tus.get(url)).body == b"abcd"


@pytest.mark.gen_test
async def test_line43_length_cannot_change_once_known(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(None)
    await tus.patch(url, 0, b"ab", headers={"Upload-Length": "6"})
    res = await tus.patch(url, 2, b"cd", headers={"Upload-Length": "7"})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_UPLOAD_LENGTH"
    assert (await tus.head(url)).headers["Upload-Length"] == "6"
    assert stored.content(upload_id_of(url)) == b"ab"


@pytest.mark.gen_test
async def test_line43_repeating_the_same_length_is_accepted(tus: Tus) -> None:
    """The value does not change, so nothing is violated (tus-js-client may resend it)."""
    url = await tus.create_url(None)
    await tus.patch(url, 0, b"ab", headers={"Upload-Length": "4"})
    res = await tus.patch(url, 2, b"cd", headers={"Upload-Length": "4"})
    assert res.code == 204


@pytest.mark.gen_test
async def test_line44_length_below_offset_is_400(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(None)
    await tus.patch(url, 0, b"abcd")
    res = await tus.patch(url, 4, b"", headers={"Upload-Length": "3"})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_UPLOAD_LENGTH"
    head = await tus.head(url)
    assert head.headers["Upload-Defer-Length"] == "1"
    assert head.headers["Upload-Offset"] == "4"


@pytest.mark.gen_test
async def test_declared_length_smaller_than_body_is_413(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(None)
    res = await tus.patch(url, 0, b"abcdef", headers={"Upload-Length": "4"})
    assert res.code == 413
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_SIZE_EXCEEDED"
    assert stored.content(upload_id_of(url)) == b""
    head = await tus.head(url)  # a refused request declares nothing
    assert head.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in head.headers


class TestMaxSize:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_size": 10}

    @pytest.mark.gen_test
    async def test_line44_declared_length_above_max_size_is_413(self, tus: Tus) -> None:
        url = await tus.create_url(None)
        res = await tus.patch(url, 0, b"ab", headers={"Upload-Length": "11"})
        assert res.code == 413
        assert json.loads(res.body)["error"]["code"] == "ERR_MAX_SIZE_EXCEEDED"
        head = await tus.head(url)
        assert head.headers["Upload-Defer-Length"] == "1"
        assert head.headers["Upload-Offset"] == "0"
