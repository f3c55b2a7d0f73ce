"""Bodies that end early (TUS-CHECKLIST lines 24, 25, 51, 60) over raw sockets.

The server must keep every byte that reached it when a client disconnects
(FIN or RST) or goes idle for ``network_timeout``, except for a checksummed
body, which is all-or-nothing. Synchronisation is by polling the server's
state with deadlines, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop
import tornado.testing
from tornado.httpclient import AsyncHTTPClient

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import RawConnection, eventually
from tests.tusclient import PATCH_TYPE, TUS, Tus
from tusd_py.cli import server
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

DATA = bytes(i % 251 for i in range(1000))


async def streams_open(ctx: AppContext, count: int) -> None:
    """Wait until exactly ``count`` request bodies are streaming (0 = all
    interrupted bodies have been saved and their locks released)."""

    async def check() -> bool:
        return ctx.lifecycle.active_streams == count

    await eventually(check)


async def offset_reaches(tus: Tus, url: str, offset: int) -> None:
    """Wait until HEAD reports ``offset`` (published while the body streams)."""

    async def check() -> bool:
        return (await tus.head(url)).headers.get("Upload-Offset") == str(offset)

    await eventually(check)


async def start_patch(
    connect: Connect, url: str, offset: int, total: int, first: bytes, **extra: str
) -> RawConnection:
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, "Upload-Offset": str(offset), "Content-Length": str(total), **extra}
    await conn.send_request("PATCH", "/files/" + upload_id_of(url), headers, first)
    return conn


async def finish_and_check(tus: Tus, stored: Stored, url: str, kept: int) -> None:
    """HEAD shows ``kept`` bytes; the rest can be sent; the content is exact."""
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == str(kept)
    assert stored.content(upload_id_of(url)) == DATA[:kept]
    res = await tus.patch(url, kept, DATA[kept:])
    assert res.code == 204, res.body
    assert res.headers["Upload-Offset"] == str(len(DATA))
    got = await tus.get(url)
    assert got.code == 200 and got.body == DATA


@pytest.mark.gen_test(timeout=30)
async def test_line24_fin_mid_body_keeps_every_byte(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
) -> None:
    url = await tus.create_url(len(DATA))
    conn = await start_patch(connect, url, 0, len(DATA), DATA[:400])
    await streams_open(ctx, 1)
    conn.close_fin()
    await streams_open(ctx, 0)
    await finish_and_check(tus, stored, url, 400)


@pytest.mark.gen_test(timeout=30)
async def test_line24_rst_mid_body_keeps_bytes_received(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
) -> None:
    url = await tus.create_url(len(DATA))
    conn = await start_patch(connect, url, 0, len(DATA), DATA[:400])
    await offset_reaches(tus, url, 400)  # the server holds them
    conn.close_rst()
    await streams_open(ctx, 0)
    await finish_and_check(tus, stored, url, 400)


@pytest.mark.gen_test(timeout=30)
async def test_line24_immediate_rst_never_overstates_offset(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
) -> None:
    """A reset may destroy bytes still in the kernel's receive queue; whatever
    the server reports afterwards is a correct prefix and resumable."""
    url = await tus.create_url(len(DATA))
    await tus.patch(url, 0, DATA[:100])
    conn = await start_patch(connect, url, 100, 900, DATA[100:700])
    await streams_open(ctx, 1)
    conn.close_rst()
    await streams_open(ctx, 0)
    kept = int((await tus.head(url)).headers["Upload-Offset"])
    assert 100 <= kept <= 700
    await finish_and_check(tus, stored, url, kept)


@pytest.mark.gen_test(timeout=30)
async def test_line24_cut_second_patch_keeps_earlier_bytes(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
) -> None:
    url = await tus.create_url(len(DATA))
    assert (await tus.patch(url, 0, DATA[:250])).code == 204
    conn = await start_patch(connect, url, 250, 750, DATA[250:600])
    await streams_open(ctx, 1)
    conn.close_fin()
    await streams_open(ctx, 0)
    await finish_and_check(tus, stored, url, 600)


@pytest.mark.parametrize("close", ["fin", "rst"])
@pytest.mark.gen_test(timeout=30)
async def test_line60_cut_checksummed_patch_keeps_nothing(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect, close: str
) -> None:
    url = await tus.create_url(len(DATA))
    assert (await tus.patch(url, 0, DATA[:100])).code == 204
    digest = base64.b64encode(hashlib.sha1(DATA[100:]).digest()).decode()
    conn = await start_patch(connect, url, 100, 900, DATA[100:500], **{"Upload-Checksum": f"sha1 {digest}"})

    async def staged_fully() -> bool:
        files = list((stored.data_dir / "staging").glob("*.stage"))
        return len(files) == 1 and files[0].stat().st_size == 400

    await eventually(staged_fully)  # the server received the 400 bytes
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "100"  # no progress for a checksummed body
    conn.close_fin() if close == "fin" else conn.close_rst()
    await streams_open(ctx, 0)
    assert stored.staged() == []
    await finish_and_check(tus, stored, url, 100)


class TestNetworkTimeout:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.network_timeout": 0.4}

    @pytest.mark.gen_test(timeout=30)
    async def test_line25_idle_body_is_cut_answered_500_and_bytes_kept(
        self, tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
    ) -> None:
        url = await tus.create_url(len(DATA))
        conn = await start_patch(connect, url, 0, len(DATA), DATA[:300])
        answer = await conn.read_until_closed()  # the server gives up on the stalled body
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 500 "), answer
        assert b"\r\nTus-Resumable: 1.0.0" in head
        assert json.loads(body)["error"]["code"] == "ERR_READ_TIMEOUT"
        await streams_open(ctx, 0)
        await finish_and_check(tus, stored, url, 300)


class TestSlowBody:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.network_timeout": 1.5}

    @pytest.mark.gen_test(timeout=30)
    async def test_line25_timeout_is_per_read_not_per_body(
        self, tus: Tus, stored: Stored, connect: Connect
    ) -> None:
        """A body that keeps moving is never cut, however long it takes in total.

        The sender is paced (0.3 s between pieces, 2.1 s in all) so the whole
        body outlasts ``network_timeout`` while no gap comes close to it.
        """
        url = await tus.create_url(len(DATA))
        loop = asyncio.get_running_loop()
        began = loop.time()
        conn = await start_patch(connect, url, 0, len(DATA), DATA[:125])
        for first in range(125, 1000, 125):
            await asyncio.sleep(0.3)  # pacing the sender, not synchronisation
            await conn.send(DATA[first : first + 125])
        res = await conn.read_response()
        assert loop.time() - began > 1.5  # the test proves what it claims
        assert res.status == 204
        assert res.header("Upload-Offset") == "1000"
        assert stored.content(upload_id_of(url)) == DATA


@pytest.mark.gen_test(timeout=30)
async def test_line51_interrupted_creation_with_upload_keeps_resource_and_bytes(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect
) -> None:
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, "Upload-Length": str(len(DATA)), "Content-Length": str(len(DATA))}
    await conn.send_request("POST", "/files/", headers, DATA[:321])
    await streams_open(ctx, 1)
    conn.close_fin()
    await streams_open(ctx, 0)
    ids = await stored.ids()
    assert len(ids) == 1
    url = tus.collection + ids[0]
    await finish_and_check(tus, stored, url, 321)


class TestShutdown:
    """SIGTERM drain (SPEC §9): a body still streaming after ``drain_timeout``
    is cut with 503 + Retry-After and its bytes are saved before exit."""

    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.drain_timeout": 0.2}

    @pytest.fixture
    def ctx(self, io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
        context = io_loop.run_sync(lambda: server.build_context(tus_config))
        yield context  # closed by RunningServer.drain_and_close

    @pytest.mark.gen_test(timeout=30)
    async def test_drain_cuts_with_503_and_saves_bytes(
        self, ctx: AppContext, tus_config: Config, http_client: AsyncHTTPClient, stored: Stored
    ) -> None:
        sock, port = tornado.testing.bind_unused_port("127.0.0.1")
        running = await server.start(ctx, [sock])
        tus = Tus(http_client, f"http://127.0.0.1:{port}")
        url = await tus.create_url(len(DATA))
        conn = await RawConnection.open(port)
        try:
            headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": str(len(DATA))}
            await conn.send_request("PATCH", "/files/" + upload_id_of(url), headers, DATA[:300])
            await offset_reaches(tus, url, 300)
            await running.drain_and_close()
            answer = await conn.read_until_closed()
        finally:
            await conn.aclose()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), answer
        assert b"\r\nRetry-After: " in head
        assert json.loads(body)["error"]["code"] == "ERR_SERVER_SHUTDOWN"
        assert stored.content(upload_id_of(url)) == DATA[:300]
        reopened = await server.build_context(tus_config)
        try:
            info = await reopened.composer.state.get(upload_id_of(url))
            assert info is not None and info.offset == 300
        finally:
            await reopened.aclose()
