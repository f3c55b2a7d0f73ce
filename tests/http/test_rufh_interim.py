"""104 (Upload Resumption Supported) interim responses over raw sockets (issue 17).

The 104 announcing the upload comes before the body is read, alongside a
``100 Continue`` the client expects; progress 104s carry ``Upload-Offset``
(never ``Location``) while a body streams (interop 6 on); requests that name
no interop version, HTTP/1.0 requests and tus requests never get one, and
the connection stays usable after them (HTTP/1.1 framing intact).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import RawResponse
from tests.http.rufh_client import PARTIAL, exchange, path_of, read_exchange, version_headers
from tests.tusclient import PATCH_TYPE, TUS

#: Bounds of the progress test: pieces sent, and the wait for a 104 after each.
PIECES = 200
PIECE = 1024
PEEK = 0.05


@pytest.mark.gen_test(timeout=30)
async def test_104_before_100_continue_then_201(stored: Stored, connect: Connect) -> None:
    conn = await connect()
    headers = {**version_headers(6), "Upload-Complete": "?1", "Content-Length": "5", "Expect": "100-continue"}
    await conn.send_request("POST", "/files/", headers)
    announced = await conn.read_response("POST")
    assert announced.status == 104
    location = announced.header("Location")
    assert location and announced.header("Upload-Limit")
    assert (await conn.read_response("POST")).status == 100
    await conn.send(b"hello")
    final = await read_exchange(conn, "POST")
    assert final.status == 201
    assert final.header("Location") == location
    assert final.header("Upload-Complete") == "?1"
    assert stored.content(upload_id_of(location)) == b"hello"
    # the same connection serves the next request
    await conn.send_request("HEAD", path_of(location), version_headers(6))
    head = await read_exchange(conn, "HEAD")
    assert head.status == 204 and head.header("Upload-Offset") == "5"
    assert head.interims == []


@pytest.mark.gen_test(timeout=30)
async def test_progress_104_carries_offset_not_location(stored: Stored, connect: Connect) -> None:
    created = await exchange(connect, "POST", "/files/", {**version_headers(7), "Upload-Complete": "?0"})
    path = path_of(created.header("Location"))
    total = PIECES * PIECE
    conn = await connect()
    headers = {
        **version_headers(7),
        **PARTIAL,
        "Upload-Complete": "?1",
        "Upload-Offset": "0",
        "Content-Length": str(total),
    }
    await conn.send_request("PATCH", path, headers)
    progress: RawResponse | None = None
    sent = 0
    for _ in range(PIECES):
        await conn.send(b"p" * PIECE)
        sent += PIECE
        try:
            progress = await conn.read_response("PATCH", timeout=PEEK)
        except TimeoutError:
            continue
        break
    assert progress is not None, "no progress 104 while the body streamed"
    assert progress.status == 104
    assert progress.header("Location") is None
    assert 0 < int(progress.header("Upload-Offset") or "0") <= sent
    await conn.send(b"p" * (total - sent))
    final = await read_exchange(conn, "PATCH")
    assert final.status == 204
    assert all(r.status == 104 and r.header("Upload-Offset") for r in final.interims)
    assert final.header("Upload-Offset") == str(total)
    assert stored.content(upload_id_of(path)) == b"p" * total


@pytest.mark.gen_test(timeout=30)
async def test_no_104_without_version_http10_or_tus(connect: Connect) -> None:
    headerless = await exchange(connect, "POST", "/files/", {"Upload-Complete": "?1"}, b"abc")
    assert headerless.status == 201 and headerless.interims == []
    tus = await exchange(connect, "POST", "/files/", {**TUS, **PATCH_TYPE, "Upload-Length": "3"}, b"abc")
    assert tus.status == 201 and tus.interims == []
    assert tus.header("Tus-Resumable") == "1.0.0" and tus.header("Upload-Limit") is None

    conn = await connect()
    head = b"POST /files/ HTTP/1.0\r\nHost: 127.0.0.1\r\nUpload-Draft-Interop-Version: 8\r\n"
    await conn.send(head + b"Upload-Complete: ?1\r\nContent-Length: 3\r\n\r\nabc")
    final = await asyncio.wait_for(read_exchange(conn, "POST"), 20)
    assert final.status == 201 and final.interims == []
