"""One writer wins (issue 14.3; SPEC "Locking"), on the in-process (SQLite),
file (``--workers``) and Redis lockers.

* Of several PATCHes at one offset exactly one gets 204 and the stored bytes
  are exactly its body; the others get 409 (or 423 after ``lock_timeout``).
* A release request cuts only a holder whose client has been idle for
  ``server.release_idle``, never a live writer.
* A request that will be refused (wrong offset) never disturbs the holder.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import RawConnection, eventually
from tests.tusclient import PATCH_TYPE, TUS, Tus

CLIENTS = 10
TRIALS = 50
#: Each racer's body: more than one read (``server.read_size`` is 64 KiB in tests).
BODY = 96 * 1024


@pytest.fixture(params=["sqlite", "file", "redis"])
def locker(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config_overrides(request: pytest.FixtureRequest, locker: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {"server.lock_timeout": 10.0, "server.release_idle": 0.5}
    if locker == "file":
        overrides["server.workers"] = 2  # host-local file locks (one process here)
    elif locker == "redis":
        overrides["redis.url"] = request.getfixturevalue("redis_url")
        overrides["redis.prefix"] = f"t{secrets.token_hex(4)}:"
    return overrides


def patch_headers(offset: int, length: int) -> dict[str, str]:
    return {**TUS, **PATCH_TYPE, "Upload-Offset": str(offset), "Content-Length": str(length)}


async def race(connect: Connect, path: str, bodies: list[bytes]) -> list[int]:
    """Send one PATCH per body at offset 0 at once; the statuses, in order."""
    conns = [await connect() for _ in bodies]
    await asyncio.gather(
        *(
            c.send_request("PATCH", path, patch_headers(0, len(b)), b)
            for c, b in zip(conns, bodies, strict=True)
        )
    )
    answers = await asyncio.gather(*(c.read_response() for c in conns))
    for conn in conns:
        await conn.aclose()
    return [a.status for a in answers]


@pytest.mark.gen_test(timeout=120)
async def test_of_ten_concurrent_patches_exactly_one_wins(tus: Tus, stored: Stored, connect: Connect) -> None:
    for trial in range(TRIALS):
        bodies = [bytes([trial % 200 + i]) * BODY for i in range(CLIENTS)]
        url = await tus.create_url(BODY)
        statuses = await race(connect, "/files/" + upload_id_of(url), bodies)
        winners = [i for i, status in enumerate(statuses) if status == 204]
        assert len(winners) == 1, (trial, statuses)
        assert set(statuses) <= {204, 409, 423}, (trial, statuses)
        got = await tus.get(url)
        assert got.code == 200 and got.body == bodies[winners[0]], trial
        assert stored.content(upload_id_of(url)) == bodies[winners[0]]


async def open_patch(connect: Connect, tus: Tus, url: str, total: int, sent: bytes) -> RawConnection:
    """A PATCH announcing ``total`` bytes that has sent ``sent``, returned once
    the server has published those bytes."""
    conn = await connect()
    await conn.send_request("PATCH", "/files/" + upload_id_of(url), patch_headers(0, total), sent)

    async def published() -> bool:
        return (await tus.head(url)).headers.get("Upload-Offset") == str(len(sent))

    await eventually(published)
    return conn


@pytest.mark.gen_test(timeout=60)
async def test_a_live_writer_is_never_cut(tus: Tus, stored: Stored, connect: Connect) -> None:
    """While the holder keeps sending, neither a PATCH the record already
    refuses (wrong offset, too long) nor one at the right offset cuts it: the
    first are refused at once, the last waits and then sees the holder's offset."""
    data = secrets.token_bytes(4000)
    url = await tus.create_url(len(data))
    holder = await open_patch(connect, tus, url, len(data), data[:1000])
    wrong = await tus.patch(url, 500, b"x" * 10)
    assert wrong.code == 409
    assert json.loads(wrong.body)["error"]["code"] == "ERR_MISMATCHED_OFFSET"
    too_long = await tus.patch(url, 1000, b"z" * 3001)
    assert too_long.code == 413, too_long.body
    waiting = asyncio.ensure_future(tus.patch(url, 1000, b"y" * 3000))
    # Keep the holder live (a chunk well within release_idle) for longer than release_idle.
    for start in range(1000, 4000, 250):
        await holder.send(data[start : start + 250])
        await asyncio.sleep(0.1)
    done = await holder.read_response()
    assert done.status == 204, done
    late = await waiting
    assert late.code == 409, late.body
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test(timeout=60)
async def test_an_idle_holder_is_released_for_a_new_patch(tus: Tus, stored: Stored, connect: Connect) -> None:
    """A client stalled past release_idle (e.g. a dead link) does not keep a
    reconnecting client out until lock_timeout: the holder is cut, keeps its
    bytes, and the new PATCH proceeds from there."""
    data = secrets.token_bytes(4000)
    url = await tus.create_url(len(data))
    holder = await open_patch(connect, tus, url, len(data), data[:1000])
    res = await tus.patch(url, 1000, data[1000:])
    assert res.code == 204, res.body
    cut = await holder.read_until_closed()
    head, _, body = cut.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), cut
    assert json.loads(body)["error"]["code"] == "ERR_UPLOAD_INTERRUPTED"
    assert stored.content(upload_id_of(url)) == data
