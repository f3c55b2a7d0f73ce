"""Concatenation and concatenation-unfinished (TUS-CHECKLIST §1.8 lines 68–78;
67 and 78's listing in test_options; 79 is S3-only)."""

from __future__ import annotations

import json

import pytest

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import Tus, metadata

PARTIAL = {"Upload-Concat": "partial"}


def rel(url: str) -> str:
    """The relative form ``/files/<id>`` of an upload URL."""
    return "/files/" + upload_id_of(url)


async def partial(tus: Tus, data: bytes, headers: dict[str, str] | None = None) -> str:
    url = await tus.create_url(len(data), headers={**PARTIAL, **(headers or {})})
    if data:
        assert (await tus.patch(url, 0, data)).code == 204
    return url


async def final(tus: Tus, urls: list[str], headers: dict[str, str] | None = None) -> str:
    concat = "final;" + " ".join(urls)
    res = await tus.request("POST", tus.collection, {"Upload-Concat": concat, **(headers or {})})
    assert res.code == 201, res.body
    return str(res.headers["Location"])


@pytest.mark.gen_test
async def test_line68_partial_creation(tus: Tus) -> None:
    res = await tus.create(5, headers=PARTIAL)
    assert res.code == 201
    head = await tus.head(res.headers["Location"])
    assert head.headers["Upload-Concat"] == "partial"
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "5"


@pytest.mark.gen_test
async def test_line69_70_final_of_finished_partials(tus: Tus, stored: Stored) -> None:
    a = await partial(tus, b"hello ")
    b = await partial(tus, b"big ")
    c = await partial(tus, b"world")
    concat = f"final;{rel(a)} {b} {rel(c)}"  # relative and absolute URLs mixed
    res = await tus.request("POST", tus.collection, {"Upload-Concat": concat})
    assert res.code == 201
    url = res.headers["Location"]
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "15"
    assert head.headers["Upload-Length"] == "15"
    assert head.headers["Upload-Concat"] == concat  # echoed exactly as received
    assert "Upload-Defer-Length" not in head.headers
    assert (await tus.get(url)).body == b"hello big world"
    assert stored.content(upload_id_of(url)) == b"hello big world"


@pytest.mark.gen_test
async def test_line77_partials_reused_and_repeated_are_kept(tus: Tus, stored: Stored) -> None:
    a = await partial(tus, b"ab")
    b = await partial(tus, b"cd")
    one = await final(tus, [rel(a), rel(b), rel(a)])
    two = await final(tus, [rel(b), rel(b)])
    assert (await tus.get(one)).body == b"abcdab"
    assert (await tus.get(two)).body == b"cdcd"
    for url, data in ((a, b"ab"), (b, b"cd")):  # partials untouched
        head = await tus.head(url)
        assert head.code == 200 and head.headers["Upload-Offset"] == "2"
        assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test
async def test_line76_final_has_its_own_metadata(tus: Tus) -> None:
    a = await partial(tus, b"x", {"Upload-Metadata": metadata(filename="part.bin")})
    own = metadata(filename="whole.bin")
    url = await final(tus, [rel(a)], {"Upload-Metadata": own})
    assert (await tus.head(url)).headers["Upload-Metadata"] == own
    bare = await final(tus, [rel(a)])
    assert "Upload-Metadata" not in (await tus.head(bare)).headers


@pytest.mark.parametrize(
    "extra", [{"Upload-Length": "2"}, {"Upload-Defer-Length": "1"}], ids=["length", "defer"]
)
@pytest.mark.gen_test
async def test_line71_final_with_length_is_400(tus: Tus, stored: Stored, extra: dict[str, str]) -> None:
    a = await partial(tus, b"ab")
    res = await tus.request("POST", tus.collection, {"Upload-Concat": f"final;{rel(a)}", **extra})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_UPLOAD_LENGTH"
    assert await stored.ids() == [upload_id_of(a)]


@pytest.mark.gen_test
async def test_line72_final_with_body_is_403(tus: Tus, stored: Stored) -> None:
    a = await partial(tus, b"ab")
    headers = {"Upload-Concat": f"final;{rel(a)}", "Content-Type": "application/offset+octet-stream"}
    res = await tus.request("POST", tus.collection, headers, b"zz")
    assert res.code == 403
    assert json.loads(res.body)["error"]["code"] == "ERR_MODIFY_FINAL"
    assert await stored.ids() == [upload_id_of(a)]


@pytest.mark.gen_test
async def test_line73_patch_to_final_is_403(tus: Tus, stored: Stored) -> None:
    a = await partial(tus, b"ab")
    b = await tus.create_url(2, headers=PARTIAL)  # unfinished: the final stays incomplete
    url = await final(tus, [rel(a), rel(b)])
    for offset in (0, 2):
        res = await tus.patch(url, offset, b"zz")
        assert res.code == 403
        assert json.loads(res.body)["error"]["code"] == "ERR_MODIFY_FINAL"
    assert stored.content(upload_id_of(a)) == b"ab"
    assert stored.content(upload_id_of(url)) == b""
    assert "Upload-Offset" not in (await tus.head(url)).headers


@pytest.mark.parametrize(
    ("concat", "status", "code"),
    [
        ("final;/files/0123456789abcdef0123456789abcdef", 404, "ERR_UPLOAD_NOT_FOUND"),
        ("final;", 400, "ERR_INVALID_CONCAT"),
        ("final", 400, "ERR_INVALID_CONCAT"),
        ("final;   ", 400, "ERR_INVALID_CONCAT"),
        ("partial;x", 400, "ERR_INVALID_CONCAT"),
        ("Final;/files/0123456789abcdef0123456789abcdef", 400, "ERR_INVALID_CONCAT"),
        ("something", 400, "ERR_INVALID_CONCAT"),
        ("final;/other/0123456789abcdef0123456789abcdef", 400, "ERR_INVALID_CONCAT"),
        ("final;/files/../state.db", 400, "ERR_INVALID_CONCAT"),
        ("final;/files/notanid", 400, "ERR_INVALID_CONCAT"),
        ("final;http://", 400, "ERR_INVALID_CONCAT"),
        ("final;" + " ".join(["x"] * 10_001), 400, "ERR_INVALID_CONCAT"),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else None,
)
@pytest.mark.gen_test
async def test_line74_bad_final_references(
    tus: Tus, stored: Stored, concat: str, status: int, code: str
) -> None:
    res = await tus.request("POST", tus.collection, {"Upload-Concat": concat})
    assert res.code == status, res.body
    assert json.loads(res.body)["error"]["code"] == code
    assert await stored.ids() == []


@pytest.mark.gen_test
async def test_line74_final_referencing_a_non_partial_is_400(tus: Tus, stored: Stored) -> None:
    plain = await tus.create_url(2)
    await tus.patch(plain, 0, b"ab")
    res = await tus.request("POST", tus.collection, {"Upload-Concat": f"final;{rel(plain)}"})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_CONCAT"
    a = await partial(tus, b"ab")
    one = await final(tus, [rel(a)])
    res = await tus.request("POST", tus.collection, {"Upload-Concat": f"final;{rel(one)}"})
    assert res.code == 400  # a final is not a partial either
    assert len(await stored.ids()) == 3


@pytest.mark.gen_test
async def test_line75_78_final_before_partials_finish(tus: Tus) -> None:
    """concatenation-unfinished: the final exists at once; HEAD shows no
    Upload-Offset until the partials are done, then offset == length."""
    a = await partial(tus, b"")
    b_url = await tus.create_url(None, headers=PARTIAL)  # deferred length
    url = await final(tus, [rel(a), rel(b_url)])
    head = await tus.head(url)
    assert "Upload-Offset" not in head.headers
    assert "Upload-Length" not in head.headers  # not computable yet
    assert head.headers["Upload-Concat"].startswith("final;")
    res = await tus.get(url)
    assert res.code == 409
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_INCOMPLETE"

    await tus.patch(b_url, 0, b"de", headers={"Upload-Length": "3"})
    head = await tus.head(url)
    assert "Upload-Offset" not in head.headers
    assert head.headers["Upload-Length"] == "3"  # a's length 0 + b's 3, now computable

    await tus.patch(b_url, 2, b"f")
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "3" and head.headers["Upload-Length"] == "3"
    assert (await tus.get(url)).body == b"def"


@pytest.mark.gen_test
async def test_line78_final_assembled_once_partials_complete(tus: Tus) -> None:
    a = await tus.create_url(3, headers=PARTIAL)
    b = await partial(tus, b"456")
    url = await final(tus, [rel(a), rel(b)])
    head = await tus.head(url)
    assert "Upload-Offset" not in head.headers
    assert head.headers["Upload-Length"] == "6"
    await tus.patch(a, 0, b"12")
    assert "Upload-Offset" not in (await tus.head(url)).headers
    await tus.patch(a, 2, b"3")
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "6"
    assert (await tus.get(url)).body == b"123456"


@pytest.mark.gen_test
async def test_partial_with_body_and_delete_of_final(tus: Tus, stored: Stored) -> None:
    res = await tus.create(3, headers=PARTIAL, body=b"xyz")
    assert res.code == 201 and res.headers["Upload-Offset"] == "3"
    a = res.headers["Location"]
    url = await final(tus, [rel(a)])
    assert (await tus.delete(url)).code == 204
    assert stored.content(upload_id_of(a)) == b"xyz"  # the partial survives
    assert (await tus.head(a)).code == 200
