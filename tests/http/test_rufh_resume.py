"""Draft uploads cut off and resumed, bodies of unknown length, CORS (issue 17).

The 104 gives the client the upload's URL before the body is read; when the
connection drops mid-body the bytes received are kept, HEAD reports them and
a PATCH completes the upload. A complete creation sent chunked fixes the
length at what arrived. Browsers may send and read the draft's fields.
"""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import eventually
from tests.http.rufh_client import PARTIAL, exchange, path_of, read_exchange, version_headers
from tests.tusclient import Tus

DATA = bytes(range(256)) * 64  # 16 KiB
CUT = 5000
ORIGIN = "https://app.example"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # A stalled body counts as idle (may be cut for a newer request) after 0.2 s.
    return {"server.release_idle": 0.2}


@pytest.mark.parametrize("version", [5, 8])
@pytest.mark.gen_test(timeout=30)
async def test_cut_creation_resumes_from_the_104_location(
    version: int, connect: Connect, stored: Stored
) -> None:
    vh = version_headers(version)
    conn = await connect()
    headers = {**vh, "Upload-Complete": "?1", "Content-Length": str(len(DATA))}
    await conn.send_request("POST", "/files/", headers, DATA[:CUT])
    announced = await conn.read_response("POST")
    assert announced.status == 104
    path = path_of(announced.header("Location"))
    conn.close_rst()

    async def held() -> int | None:
        head = await exchange(connect, "HEAD", path, vh)
        offset = int(head.header("Upload-Offset") or "0")
        return offset if head.status == 204 and offset == CUT else None

    assert await eventually(held) == CUT
    head = await exchange(connect, "HEAD", path, vh)
    assert head.header("Upload-Complete") == "?0"
    assert head.header("Upload-Length") == str(len(DATA))  # from Content-Length, Upload-Complete: ?1
    append = {**vh, **(PARTIAL if version >= 6 else {}), "Upload-Complete": "?1", "Upload-Offset": str(CUT)}
    done = await exchange(connect, "PATCH", path, append, DATA[CUT:])
    assert done.status == 204 and done.header("Upload-Complete") == "?1"
    assert stored.content(upload_id_of(path)) == DATA


@pytest.mark.gen_test(timeout=30)
async def test_chunked_complete_creation_fixes_the_length(connect: Connect, tus: Tus) -> None:
    conn = await connect()
    headers = {**version_headers(8), "Upload-Complete": "?1", "Transfer-Encoding": "chunked"}
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    await conn.send_request("POST", "/files/", headers, body)
    final = await read_exchange(conn, "POST")
    assert final.status == 201, final.final
    assert final.header("Upload-Offset") == "11" and final.header("Upload-Complete") == "?1"
    path = path_of(final.header("Location"))
    head = await tus.head(path)
    assert head.headers["Upload-Length"] == "11"
    assert (await tus.get(path)).body == b"hello world"


def _listed(res: HTTPResponse, name: str) -> set[str]:
    return {v.strip() for v in res.headers.get(name, "").split(",") if v.strip()}


@pytest.mark.gen_test
async def test_cors_lets_browsers_speak_the_draft(tus: Tus) -> None:
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "upload-complete, upload-draft-interop-version",
    }
    res = await tus.request("OPTIONS", tus.collection, preflight, tus=False)
    assert {"Upload-Complete", "Upload-Draft-Interop-Version", "Content-Digest", "Repr-Digest"} <= _listed(
        res, "Access-Control-Allow-Headers"
    )
    created = await tus.request(
        "POST", tus.collection, {"Origin": ORIGIN, "Upload-Complete": "?0", **version_headers(4)}, tus=False
    )
    assert created.code == 201
    assert {"Upload-Complete", "Upload-Limit", "Location"} <= _listed(
        created, "Access-Control-Expose-Headers"
    )


@pytest.mark.gen_test(timeout=30)
async def test_delete_stops_the_open_append(connect: Connect, stored: Stored) -> None:
    vh = version_headers(8)
    created = await exchange(connect, "POST", "/files/", {**vh, "Upload-Complete": "?0"})
    path = path_of(created.header("Location"))
    conn = await connect()
    headers = {
        **vh,
        **PARTIAL,
        "Upload-Complete": "?1",
        "Upload-Offset": "0",
        "Content-Length": str(len(DATA)),
    }
    await conn.send_request("PATCH", path, headers, DATA[:CUT])

    async def written() -> bool:
        return stored.content(upload_id_of(path)) == DATA[:CUT]

    await eventually(written)
    gone = await exchange(connect, "DELETE", path, vh)
    assert gone.status == 204
    await conn.read_until_closed()
    assert (await exchange(connect, "HEAD", path, vh)).status == 404
    assert await stored.ids() == []
