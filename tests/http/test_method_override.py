"""X-HTTP-Method-Override (TUS-CHECKLIST line 9): a POST to an upload URL
is handled exactly as the named method; other real methods ignore it."""

from __future__ import annotations

import json

import pytest

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import PATCH_TYPE, Tus


def override(method: str) -> dict[str, str]:
    return {"X-HTTP-Method-Override": method}


@pytest.mark.parametrize("spelling", ["PATCH", "patch", " Patch "])
@pytest.mark.gen_test
async def test_line9_post_as_patch(tus: Tus, stored: Stored, spelling: str) -> None:
    url = await tus.create_url(5)
    headers = {**override(spelling), **PATCH_TYPE, "Upload-Offset": "0"}
    res = await tus.request("POST", url, headers, b"hello")
    assert res.code == 204
    assert res.headers["Upload-Offset"] == "5"
    assert stored.content(upload_id_of(url)) == b"hello"


@pytest.mark.gen_test
async def test_line9_post_as_patch_validates_like_patch(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(5)
    res = await tus.request("POST", url, {**override("PATCH"), **PATCH_TYPE, "Upload-Offset": "2"}, b"x")
    assert res.code == 409
    res = await tus.request("POST", url, {**override("PATCH"), "Upload-Offset": "0"}, b"x")
    assert res.code == 415
    assert stored.content(upload_id_of(url)) == b""


@pytest.mark.gen_test
async def test_line9_post_as_head(tus: Tus) -> None:
    url = await tus.create_url(5)
    await tus.patch(url, 0, b"ab")
    res = await tus.request("POST", url, override("HEAD"))
    assert res.code == 200
    assert res.headers["Upload-Offset"] == "2"
    assert res.headers["Upload-Length"] == "5"
    assert res.body == b""
    res = await tus.request("POST", tus.collection + "0" * 32, override("HEAD"))
    assert res.code == 404
    assert res.body == b""  # a HEAD error has no body, even when overridden


@pytest.mark.gen_test
async def test_line9_post_as_delete(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(5)
    res = await tus.request("POST", url, override("DELETE"))
    assert res.code == 204
    assert await stored.ids() == []
    assert (await tus.head(url)).code == 404


@pytest.mark.gen_test
async def test_line9_post_as_get(tus: Tus) -> None:
    url = await tus.create_url(2)
    await tus.patch(url, 0, b"ok")
    res = await tus.request("POST", url, override("GET"))
    assert res.code == 200 and res.body == b"ok"


@pytest.mark.parametrize("value", [None, "PUT", "OPTIONS", "POST", "", "TRACE"])
@pytest.mark.gen_test
async def test_post_to_upload_url_without_usable_override_is_405(
    tus: Tus, stored: Stored, value: str | None
) -> None:
    url = await tus.create_url(5)
    headers = override(value) if value is not None else {}
    res = await tus.request("POST", url, {**headers, **PATCH_TYPE, "Upload-Offset": "0"}, b"hello")
    assert res.code == 405
    assert json.loads(res.body)["error"]["code"] == "ERR_METHOD_NOT_ALLOWED"
    assert stored.content(upload_id_of(url)) == b""


@pytest.mark.gen_test
async def test_override_ignored_unless_the_real_method_is_post(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(5)
    res = await tus.request("PATCH", url, {**override("DELETE"), **PATCH_TYPE, "Upload-Offset": "0"}, b"abc")
    assert res.code == 204 and res.headers["Upload-Offset"] == "3"
    assert await stored.ids() == [upload_id_of(url)]
    res = await tus.request("HEAD", url, override("DELETE"))
    assert res.code == 200
    assert await stored.ids() == [upload_id_of(url)]
