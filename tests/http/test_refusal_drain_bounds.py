"""The drain of a refused body is bounded (issue 14.4, :mod:`handlers.httpconn`):
by ``server.refusal_drain`` bytes (declared or counted) and by
``server.network_timeout`` of silence; past either the server answers first,
then hangs up. A drained body keeps the connection usable, chunked too.

Raw sockets: the client reads the refusal before it sends the body.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from tests.http.conftest import Connect, upload_id_of
from tests.http.fake_auth import as_user, ctx  # noqa: F401  (the ctx fixture with test auth)
from tests.http.raw import RawConnection
from tests.tusclient import PATCH_TYPE, TUS, Tus

ALICE = as_user("alice")
BOUND = 256 * 1024
PATCH = {**TUS, **PATCH_TYPE, **ALICE}


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"server.refusal_drain": BOUND, "server.network_timeout": 1.0}


async def refused(tus: Tus, connect: Connect, headers: dict[str, str]) -> RawConnection:
    """A connection whose PATCH (head only sent) got its 409."""
    url = await tus.create_url(10 << 20, headers=ALICE)
    conn = await connect()
    await conn.send_request(
        "PATCH", "/files/" + upload_id_of(url), {**PATCH, "Upload-Offset": "5", **headers}
    )
    res = await conn.read_response()
    assert res.status == 409
    assert json.loads(res.body)["error"]["code"] == "ERR_MISMATCHED_OFFSET"
    return conn


async def send_until_closed(conn: RawConnection, data: bytes, limit: int) -> int:
    """Send ``data`` repeatedly (at most ``limit`` bytes); how much went out
    before the server hung up (``limit`` if it never did)."""
    sent = 0
    with contextlib.suppress(ConnectionError):
        while sent < limit:
            await conn.send(data)
            sent += len(data)
    return sent


@pytest.mark.gen_test(timeout=30)
async def test_declared_body_over_the_bound_is_answered_then_closed(tus: Tus, connect: Connect) -> None:
    conn = await refused(tus, connect, {"Content-Length": str(4 * BOUND)})
    assert await conn.read_until_closed(timeout=10) == b""


@pytest.mark.gen_test(timeout=30)
async def test_chunked_body_over_the_bound_is_cut_at_the_bound(tus: Tus, connect: Connect) -> None:
    conn = await refused(tus, connect, {"Transfer-Encoding": "chunked"})
    piece = 64 * 1024
    chunk = f"{piece:x}\r\n".encode() + bytes(piece) + b"\r\n"
    limit = 64 * BOUND  # far beyond what loopback socket buffers hold
    assert await send_until_closed(conn, chunk, limit) < limit
    assert await conn.read_until_closed(timeout=10) == b""


@pytest.mark.gen_test(timeout=30)
async def test_chunked_body_within_the_bound_keeps_the_connection(tus: Tus, connect: Connect) -> None:
    conn = await refused(tus, connect, {"Transfer-Encoding": "chunked"})
    piece = 32 * 1024
    await conn.send((f"{piece:x}\r\n".encode() + bytes(piece) + b"\r\n") * 4 + b"0\r\n\r\n")
    await conn.send_request("OPTIONS", "/files/", TUS)
    assert (await conn.read_response("OPTIONS")).status == 204


@pytest.mark.gen_test(timeout=30)
async def test_silent_client_is_hung_up_on_after_network_timeout(tus: Tus, connect: Connect) -> None:
    conn = await refused(tus, connect, {"Content-Length": str(BOUND)})
    await conn.send(bytes(1000))
    assert await conn.read_until_closed(timeout=10) == b""


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/no-such-route", {}, 404),
        ("POST", "/healthz", {}, 405),
        ("PUT", "/files/", {}, 405),
        ("POST", "/files/", {"X-Padding": "p" * (1 << 20)}, 431),
    ],
    ids=["404", "405-health", "405-collection", "431"],
)
@pytest.mark.gen_test(timeout=30)
async def test_bodiless_refusals_come_before_the_body(
    connect: Connect, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    """A route that takes no body (or a request refused by route or method)
    answers at once: Tornado does not buffer a 1 GiB body first."""
    conn = await connect()
    await conn.send_request(method, path, {**TUS, **ALICE, "Content-Length": str(1 << 30), **headers})
    res = await conn.read_response(method)
    assert res.status == status
    assert json.loads(res.body)["error"]["code"]


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("HEAD", "/files/" + "f" * 32, ALICE, 404),
        ("HEAD", "/files/" + "f" * 32, {}, 401),
        ("GET", "/no-such-route", {}, 404),
    ],
    ids=["404-upload", "401", "404-route"],
)
@pytest.mark.gen_test(timeout=30)
async def test_bodiless_refusal_keeps_the_connection(
    connect: Connect, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    conn = await connect()
    for _ in range(2):
        await conn.send_request(method, path, {**TUS, **headers})
        assert (await conn.read_response(method)).status == status
    await conn.send_request("OPTIONS", "/files/", TUS)
    assert (await conn.read_response("OPTIONS")).status == 204
