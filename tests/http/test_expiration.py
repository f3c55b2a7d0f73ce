"""Expiration (TUS-CHECKLIST §1.5 lines 53–55; 52 in test_options).

Time is driven by an injected clock (no sleeping through an expiry); one test
runs the real server's sweeper with a tiny ``expiration`` and polls.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import tornado.ioloop
import tornado.testing
from tornado.httpclient import AsyncHTTPClient

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import eventually
from tests.tusclient import PATCH_TYPE, TUS, Tus
from tusd_py.cli.server import build_context, start
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

EXPIRATION = 3600.0
TOMBSTONE_TTL = 600.0
IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT"
)


class FakeClock:
    """The service's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"server.expiration": EXPIRATION, "server.tombstone_ttl": TOMBSTONE_TTL}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config, clock: FakeClock) -> Iterator[AppContext]:
    context = io_loop.run_sync(lambda: build_context(tus_config, clock=clock))
    yield context
    io_loop.run_sync(lambda: context.lifecycle.join_tasks(10.0))
    io_loop.run_sync(context.aclose)


def expires_at(header: str) -> float:
    assert IMF_FIXDATE.fullmatch(header), header
    return parsedate_to_datetime(header).timestamp()


@pytest.mark.gen_test
async def test_line53_expires_in_201_and_every_patch_sliding(tus: Tus, clock: FakeClock) -> None:
    res = await tus.create(10)
    assert expires_at(res.headers["Upload-Expires"]) == clock.now + EXPIRATION
    url = res.headers["Location"]
    clock.now += 100
    res = await tus.patch(url, 0, b"abc")
    assert expires_at(res.headers["Upload-Expires"]) == clock.now + EXPIRATION  # the window slides
    head = await tus.head(url)
    assert expires_at(head.headers["Upload-Expires"]) == clock.now + EXPIRATION
    clock.now += EXPIRATION - 1  # still alive: the last PATCH renewed it
    res = await tus.patch(url, 3, b"defg")
    assert res.code == 204
    assert expires_at(res.headers["Upload-Expires"]) == clock.now + EXPIRATION


@pytest.mark.gen_test
async def test_line54_expired_upload_is_410_before_the_sweep(
    tus: Tus, clock: FakeClock, stored: Stored
) -> None:
    url = await tus.create_url(10)
    await tus.patch(url, 0, b"abc")
    clock.now += EXPIRATION + 1
    head = await tus.head(url)
    assert head.code == 410 and head.body == b""
    assert "Upload-Offset" not in head.headers
    res = await tus.patch(url, 3, b"def")
    assert res.code == 410
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_GONE"
    assert stored.content(upload_id_of(url)) == b"abc"  # nothing appended
    assert (await tus.get(url)).code == 410
    assert (await tus.delete(url)).code == 410


@pytest.mark.gen_test
async def test_line55_sweep_removes_data_and_leaves_a_410_tombstone(
    tus: Tus, clock: FakeClock, stored: Stored, ctx: AppContext
) -> None:
    old = await tus.create_url(10)
    await tus.patch(old, 0, b"abc")
    clock.now += EXPIRATION / 2
    fresh = await tus.create_url(10)
    done = await tus.create_url(2)
    await tus.patch(done, 0, b"ok")
    clock.now += EXPIRATION / 2 + 1
    assert await ctx.service.sweep_expired() == 1
    assert sorted(stored.files()) == sorted([upload_id_of(fresh), upload_id_of(done)])
    assert (await tus.head(old)).code == 410
    assert (await tus.head(fresh)).code == 200
    assert (await tus.head(done)).code == 200  # complete uploads never expire
    assert (await tus.get(done)).body == b"ok"
    assert await ctx.service.sweep_expired() == 0  # idempotent

    clock.now += TOMBSTONE_TTL + 1  # tombstones are forgotten: 410 becomes 404
    await ctx.service.sweep_expired()
    assert (await tus.head(old)).code == 404
    assert upload_id_of(old) not in await stored.ids()


@pytest.mark.gen_test
async def test_line74_final_referencing_an_expired_partial_is_400(tus: Tus, clock: FakeClock) -> None:
    a = await tus.create_url(3, headers={"Upload-Concat": "partial"})
    clock.now += EXPIRATION + 1
    res = await tus.request("POST", tus.collection, {"Upload-Concat": "final;/files/" + upload_id_of(a)})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_CONCAT"


class TestRealSweeper:
    """The server's own sweeper task (started by ``server.start``) expires uploads."""

    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.expiration": 0.3, "server.sweep_interval": 0.05}

    @pytest.fixture
    def ctx(self, io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
        context = io_loop.run_sync(lambda: build_context(tus_config))
        yield context  # closed by RunningServer.drain_and_close

    @pytest.mark.gen_test(timeout=30)
    async def test_line55_sweeper_task_expires_idle_uploads(
        self, ctx: AppContext, stored: Stored, http_client: AsyncHTTPClient
    ) -> None:
        sock, port = tornado.testing.bind_unused_port("127.0.0.1")
        running = await start(ctx, [sock])
        try:
            tus = Tus(http_client, f"http://127.0.0.1:{port}")
            url = await tus.create_url(10)
            assert stored.files() == [upload_id_of(url)]

            async def swept() -> bool:
                return stored.files() == []

            await eventually(swept)
            assert (await tus.head(url)).code == 410
        finally:
            await running.drain_and_close()


@pytest.mark.gen_test(timeout=30)
async def test_sweep_never_interrupts_a_live_patch(
    tus: Tus, clock: FakeClock, ctx: AppContext, stored: Stored, connect: Connect
) -> None:
    """A PATCH that starts just before the upload would expire renews the
    expiry at once, so the sweeper neither expires the upload nor asks the
    request to release its lock, even for a checksummed body (which publishes
    nothing until it ends)."""
    url = await tus.create_url(10)
    clock.now += EXPIRATION - 1
    conn = await connect()
    checksum = "sha1 " + base64.b64encode(hashlib.sha1(b"0123456789").digest()).decode()
    headers = {
        **TUS,
        **PATCH_TYPE,
        "Upload-Offset": "0",
        "Content-Length": "10",
        "Upload-Checksum": checksum,
    }
    await conn.send_request("PATCH", "/files/" + upload_id_of(url), headers, b"0123")

    async def staged() -> bool:
        files = list((stored.data_dir / "staging").glob("*.stage"))
        return len(files) == 1 and files[0].stat().st_size == 4

    await eventually(staged)
    clock.now += 2  # past the expiry set at creation
    assert await ctx.service.sweep_expired() == 0
    await conn.send(b"456789")
    res = await conn.read_response()
    assert res.status == 204, res
    assert stored.content(upload_id_of(url)) == b"0123456789"
