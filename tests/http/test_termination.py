"""Termination (TUS-CHECKLIST §1.7 lines 63–65; 62 in test_options, 66 in test_locking)."""

from __future__ import annotations

import json

import pytest

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import Tus


@pytest.mark.parametrize("sent", [b"", b"abc", b"abcdef"], ids=["empty", "unfinished", "finished"])
@pytest.mark.gen_test
async def test_line63_64_delete_frees_everything(tus: Tus, stored: Stored, sent: bytes) -> None:
    url = await tus.create_url(6)
    if sent:
        assert (await tus.patch(url, 0, sent)).code == 204
    res = await tus.delete(url)
    assert res.code == 204
    assert res.body == b""
    assert res.headers["Tus-Resumable"] == "1.0.0"
    assert stored.files() == []
    assert await stored.ids() == []
    # line 64: the URL is gone for every method
    assert (await tus.head(url)).code == 404
    res = await tus.patch(url, len(sent), b"x")
    assert res.code == 404
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_NOT_FOUND"
    assert (await tus.delete(url)).code == 404
    assert (await tus.get(url)).code == 404


@pytest.mark.parametrize(
    "path", ["/files/0123456789abcdef0123456789abcdef", "/files/x", "/files/..%2F..%2Fstate.db"]
)
@pytest.mark.gen_test
async def test_line65_delete_unknown_is_404(tus: Tus, base_url: str, stored: Stored, path: str) -> None:
    url = await tus.create_url(1)
    res = await tus.delete(base_url + path)
    assert res.code == 404
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_NOT_FOUND"
    assert await stored.ids() == [upload_id_of(url)]
    assert (stored.data_dir / "state.db").exists()


@pytest.mark.parametrize("version", [None, "0.2.2"])
@pytest.mark.gen_test
async def test_line65_delete_requires_tus_resumable(tus: Tus, stored: Stored, version: str | None) -> None:
    url = await tus.create_url(3)
    await tus.patch(url, 0, b"abc")
    headers = {"Tus-Resumable": version} if version else {}
    res = await tus.request("DELETE", url, headers, tus=False)
    assert res.code == 412
    assert res.headers["Tus-Version"] == "1.0.0"
    assert stored.content(upload_id_of(url)) == b"abc"
    assert (await tus.head(url)).code == 200
