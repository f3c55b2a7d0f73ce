"""HEAD (TUS-CHECKLIST §1.1 lines 6, 8, 11–15, 28)."""

from __future__ import annotations

import pytest

from tests.http.conftest import Stored
from tests.tusclient import Tus, metadata


@pytest.mark.gen_test
async def test_line11_12_13_fresh_upload(tus: Tus) -> None:
    url = await tus.create_url(10)
    head = await tus.head(url)
    assert head.code == 200
    assert head.headers["Upload-Offset"] == "0"  # line 11: also when 0
    assert head.headers["Upload-Length"] == "10"  # line 12
    assert head.headers["Cache-Control"] == "no-store"  # line 13
    assert head.headers["Tus-Resumable"] == "1.0.0"  # line 6
    assert head.headers["X-Content-Type-Options"] == "nosniff"  # line 28
    assert "Upload-Defer-Length" not in head.headers
    assert head.body == b""


@pytest.mark.gen_test
async def test_line11_partial_and_complete_offsets(tus: Tus) -> None:
    url = await tus.create_url(6)
    await tus.patch(url, 0, b"abc")
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "3"
    assert head.headers["Upload-Expires"].endswith("GMT")
    await tus.patch(url, 3, b"def")
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "6"  # line 11: also when complete
    assert head.headers["Upload-Length"] == "6"
    assert "Upload-Expires" not in head.headers  # a complete upload does not expire


@pytest.mark.gen_test
async def test_line15_metadata_echoed(tus: Tus) -> None:
    raw = metadata(filename="a b.txt", x="\u00e9")
    url = await tus.create_url(1, headers={"Upload-Metadata": raw})
    head = await tus.head(url)
    assert head.headers["Upload-Metadata"] == raw


@pytest.mark.parametrize(
    "path",
    [
        "/files/0123456789abcdef0123456789abcdef",  # well-formed, unknown
        "/files/not-an-id",
        "/files/0123456789ABCDEF0123456789ABCDEF",  # ids are lowercase
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/%2e%2e",
        "/files/" + "a" * 300,
    ],
)
@pytest.mark.gen_test
async def test_line14_unknown_id_is_404_with_empty_body(tus: Tus, base_url: str, path: str) -> None:
    head = await tus.head(base_url + path)
    assert head.code == 404
    assert "Upload-Offset" not in head.headers
    assert head.body == b""
    assert head.headers["Tus-Resumable"] == "1.0.0"  # line 6: errors too
    assert head.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.gen_test
async def test_line8_head_without_tus_resumable_is_412_empty(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(3)
    head = await tus.request("HEAD", url, {}, tus=False)
    assert head.code == 412
    assert head.headers["Tus-Version"] == "1.0.0"
    assert head.body == b""


@pytest.mark.gen_test
async def test_head_does_not_change_anything(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(3)
    before = await stored.ctx.composer.state.get(url.rsplit("/", 1)[-1])
    for _ in range(3):
        assert (await tus.head(url)).code == 200
    after = await stored.ctx.composer.state.get(url.rsplit("/", 1)[-1])
    assert before == after
