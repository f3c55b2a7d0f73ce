"""One writer per upload (TUS-CHECKLIST lines 26, 66; SPEC §2 "Locking").

A PATCH or DELETE for an upload whose PATCH is still open asks the holder to
release: once the holder's client has been idle for ``release_idle`` the
holder stops reading, saves its bytes, answers ``ERR_UPLOAD_INTERRUPTED`` and
unlocks; the newcomer then proceeds. A PATCH at the wrong offset is refused
without disturbing the holder. A holder that does not let go within
``lock_timeout`` yields 423 + Retry-After. (Concurrent writers: test_one_writer.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import RawConnection, eventually
from tests.tusclient import PATCH_TYPE, TUS, Tus
from tusd_py.ops.context import AppContext

DATA = bytes(i % 241 for i in range(1000))


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # The stalled holders below count as idle after 0.2 s.
    return {"server.release_idle": 0.2}


async def stalled_patch(connect: Connect, tus: Tus, url: str, offset: int, sent: bytes) -> RawConnection:
    """A PATCH announcing the rest of DATA that sends ``sent`` and stalls,
    returned once the server has published those bytes."""
    conn = await connect()
    headers = {
        **TUS,
        **PATCH_TYPE,
        "Upload-Offset": str(offset),
        "Content-Length": str(len(DATA) - offset),
    }
    await conn.send_request("PATCH", "/files/" + upload_id_of(url), headers, sent)
    target = str(offset + len(sent))

    async def published() -> bool:
        return (await tus.head(url)).headers.get("Upload-Offset") == target

    await eventually(published)
    return conn


def interrupted_answer(raw: bytes) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), raw
    assert json.loads(body)["error"]["code"] == "ERR_UPLOAD_INTERRUPTED"


@pytest.mark.gen_test(timeout=30)
async def test_line26_second_patch_releases_the_first_and_succeeds(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
) -> None:
    url = await tus.create_url(len(DATA))
    first = await stalled_patch(connect, tus, url, 0, DATA[:300])
    res = await tus.patch(url, 300, DATA[300:])
    assert res.code == 204, res.body
    assert res.headers["Upload-Offset"] == str(len(DATA))
    interrupted_answer(await first.read_until_closed())
    got = await tus.get(url)
    assert got.code == 200 and got.body == DATA
    assert stored.content(upload_id_of(url)) == DATA
    assert ctx.lifecycle.active_streams == 0


@pytest.mark.gen_test(timeout=30)
async def test_line26_second_patch_with_stale_offset_gets_409_without_release(
    tus: Tus, stored: Stored, connect: Connect
) -> None:
    """A newcomer that will be refused (stale offset) leaves the holder alone."""
    url = await tus.create_url(len(DATA))
    first = await stalled_patch(connect, tus, url, 0, DATA[:300])
    res = await tus.patch(url, 0, DATA)
    assert res.code == 409
    assert json.loads(res.body)["error"]["code"] == "ERR_MISMATCHED_OFFSET"
    await first.send(DATA[300:])
    done = await first.read_response()
    assert done.status == 204 and done.header("Upload-Offset") == str(len(DATA))
    assert stored.content(upload_id_of(url)) == DATA


@pytest.mark.gen_test(timeout=30)
async def test_head_does_not_interrupt_an_open_patch(tus: Tus, connect: Connect) -> None:
    """HEAD takes no lock (progress polling must not kill uploads)."""
    url = await tus.create_url(len(DATA))
    first = await stalled_patch(connect, tus, url, 0, DATA[:300])
    for _ in range(3):
        assert (await tus.head(url)).headers["Upload-Offset"] == "300"
    await first.send(DATA[300:])
    res = await first.read_response()
    assert res.status == 204 and res.header("Upload-Offset") == str(len(DATA))
    assert (await tus.get(url)).body == DATA


@pytest.mark.gen_test(timeout=30)
async def test_line66_delete_stops_the_open_patch_then_deletes(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
) -> None:
    url = await tus.create_url(len(DATA))
    first = await stalled_patch(connect, tus, url, 0, DATA[:300])
    res = await tus.delete(url)
    assert res.code == 204
    interrupted_answer(await first.read_until_closed())
    assert (await tus.head(url)).code == 404
    assert stored.files() == []
    assert await stored.ids() == []
    assert ctx.lifecycle.active_streams == 0


class TestLockTimeout:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.lock_timeout": 0.3, "server.release_idle": 0.2}

    @pytest.mark.gen_test(timeout=30)
    async def test_holder_that_never_releases_gives_423(self, tus: Tus, ctx: AppContext) -> None:
        url = await tus.create_url(10)
        asked: list[bool] = []
        lock = ctx.composer.locker.new_lock(upload_id_of(url))
        await lock.acquire(1.0, lambda: asked.append(True))
        try:
            for method in ("PATCH", "DELETE"):
                if method == "PATCH":
                    res = await tus.patch(url, 0, b"abc")
                else:
                    res = await tus.delete(url)
                assert res.code == 423, (method, res.body)
                assert json.loads(res.body)["error"]["code"] == "ERR_LOCK_TIMEOUT"
                assert int(res.headers["Retry-After"]) >= 1
                assert res.headers["Tus-Resumable"] == "1.0.0"
            assert asked == [True]  # the holder was asked (once) to let go
        finally:
            await lock.release()
        assert (await tus.patch(url, 0, b"abc")).code == 204
        assert (await tus.head(url)).headers["Upload-Offset"] == "3"
