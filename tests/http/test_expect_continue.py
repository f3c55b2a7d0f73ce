"""``Expect: 100-continue`` (TUS-CHECKLIST line 50; SPEC §2: answered only
after auth and validation pass).

Over raw sockets: the client sends only the request head and waits. A request
that will be refused gets its error as the first response (no 100 first) and
nothing is written; a valid one gets ``100 Continue``, sends the body, then
gets its final response.
"""

from __future__ import annotations

import json

import pytest

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.fake_auth import as_user, ctx  # noqa: F401  (the ctx fixture with test auth)
from tests.tusclient import PATCH_TYPE, TUS, Tus

ALICE = as_user("alice")
EXPECT = {"Expect": "100-continue"}


@pytest.mark.gen_test(timeout=30)
async def test_line50_valid_patch_gets_100_then_204(tus: Tus, stored: Stored, connect: Connect) -> None:
    url = await tus.create_url(5, headers=ALICE)
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, **ALICE, **EXPECT, "Upload-Offset": "0", "Content-Length": "5"}
    await conn.send_request("PATCH", "/files/" + upload_id_of(url), headers)
    interim = await conn.read_response()
    assert interim.status == 100
    await conn.send(b"hello")
    final = await conn.read_response()
    assert final.status == 204
    assert final.header("Upload-Offset") == "5"
    assert stored.content(upload_id_of(url)) == b"hello"


@pytest.mark.gen_test(timeout=30)
async def test_line50_valid_creation_with_upload_gets_100_then_201(stored: Stored, connect: Connect) -> None:
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, **ALICE, **EXPECT, "Upload-Length": "5", "Content-Length": "5"}
    await conn.send_request("POST", "/files/", headers)
    assert (await conn.read_response()).status == 100
    await conn.send(b"hello")
    final = await conn.read_response()
    assert final.status == 201
    assert final.header("Upload-Offset") == "5"
    assert stored.content(upload_id_of(final.header("Location") or "")) == b"hello"


PATCH_REFUSALS = [
    ("unauthenticated", {"Upload-Offset": "0"}, None, 401, "ERR_UNAUTHENTICATED"),
    ("bad credential", {"Upload-Offset": "0", **as_user("!x")}, None, 401, "ERR_UNAUTHENTICATED"),
    ("other user", {"Upload-Offset": "0", **as_user("mallory")}, None, 404, "ERR_UPLOAD_NOT_FOUND"),
    (
        "version",
        {"Upload-Offset": "0", **ALICE, "Tus-Resumable": "0.2.2"},
        None,
        412,
        "ERR_UNSUPPORTED_VERSION",
    ),
    ("content type", {"Upload-Offset": "0", **ALICE, "Content-Type": "text/plain"}, None, 415, None),
    ("offset", {"Upload-Offset": "3", **ALICE}, None, 409, "ERR_MISMATCHED_OFFSET"),
    (
        "too big",
        {"Upload-Offset": "0", **ALICE, "Content-Length": "6"},
        None,
        413,
        "ERR_UPLOAD_SIZE_EXCEEDED",
    ),
    ("checksum", {"Upload-Offset": "0", **ALICE, "Upload-Checksum": "sha9 x"}, None, 400, None),
    ("unknown id", {"Upload-Offset": "0", **ALICE}, "/files/" + "f" * 32, 404, "ERR_UPLOAD_NOT_FOUND"),
]


@pytest.mark.parametrize(
    ("name", "extra", "path", "status", "code"), PATCH_REFUSALS, ids=[r[0] for r in PATCH_REFUSALS]
)
@pytest.mark.gen_test(timeout=30)
async def test_line50_refused_patch_gets_error_without_100(
    tus: Tus,
    stored: Stored,
    connect: Connect,
    name: str,
    extra: dict[str, str],
    path: str | None,
    status: int,
    code: str | None,
) -> None:
    url = await tus.create_url(5, headers=ALICE)
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, **EXPECT, "Content-Length": "5", **extra}
    await conn.send_request("PATCH", path or "/files/" + upload_id_of(url), headers)
    first = await conn.read_response()
    assert first.status == status, first
    if code:
        assert json.loads(first.body)["error"]["code"] == code
    assert first.header("Tus-Resumable") == "1.0.0"
    assert await conn.read_until_closed() == b""  # no 100 afterwards either; the server hangs up
    assert stored.content(upload_id_of(url)) == b""
    assert (await tus.head(url, headers=ALICE)).headers["Upload-Offset"] == "0"


POST_REFUSALS = [
    ("unauthenticated", {"Upload-Length": "5"}, 401),
    ("version", {**ALICE, "Upload-Length": "5", "Tus-Resumable": "1.0"}, 412),
    ("no length", {**ALICE}, 400),
    ("metadata", {**ALICE, "Upload-Length": "5", "Upload-Metadata": "a b c"}, 400),
    ("body > length", {**ALICE, "Upload-Length": "4"}, 413),
    ("content type", {**ALICE, "Upload-Length": "5", "Content-Type": "text/plain"}, 415),
]


@pytest.mark.parametrize(("name", "extra", "status"), POST_REFUSALS, ids=[r[0] for r in POST_REFUSALS])
@pytest.mark.gen_test(timeout=30)
async def test_line50_refused_creation_gets_error_without_100(
    stored: Stored, connect: Connect, name: str, extra: dict[str, str], status: int
) -> None:
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, **EXPECT, "Content-Length": "5", **extra}
    await conn.send_request("POST", "/files/", headers)
    first = await conn.read_response()
    assert first.status == status, first
    assert await conn.read_until_closed() == b""
    assert await stored.ids() == []
