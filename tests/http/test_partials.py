"""Partial uploads of concatenations (issue 12.5), on local disk and S3 (moto).

* A partial keeps the normal expiry while unassembled (also once complete).
* Once its final is assembled and complete — at creation, or lazily on a
  HEAD of a concatenation-unfinished final — the partial is removed by the
  sweeper after :data:`tusd_py.core.partials.REUSE_GRACE` (bytes and record; 410).
* Listings hide partials unless ``include=partial``.

Time is the service's injected clock; the sweeper is called directly.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.http.conftest import Stored, upload_id_of
from tests.integration import s3_support as s3t
from tests.restapi import get_json
from tests.tusclient import Tus
from tusd_py.cli.server import build_context
from tusd_py.core.config import Config
from tusd_py.core.partials import REUSE_GRACE
from tusd_py.ops.context import AppContext

EXPIRATION = 3600.0
PARTIAL = {"Upload-Concat": "partial"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["disk", "s3"])
def where(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config_overrides(request: pytest.FixtureRequest, where: str) -> dict[str, Any]:
    overrides: dict[str, Any] = {"server.expiration": EXPIRATION}
    if where == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        overrides.update(s3t.overrides(endpoint, request.getfixturevalue("bucket"), threshold=64 * 1024))
    return overrides


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config, clock: FakeClock) -> Iterator[AppContext]:
    context = io_loop.run_sync(lambda: build_context(tus_config, clock=clock))
    yield context
    io_loop.run_sync(lambda: context.lifecycle.join_tasks(10.0))
    io_loop.run_sync(context.aclose)


class Bytes:
    """Where an upload's bytes live (local file or S3 object), for "removed" checks."""

    def __init__(self, request: pytest.FixtureRequest, where: str, stored: Stored) -> None:
        self.where = where
        self.stored = stored
        self.request = request

    def held(self, upload_id: str) -> bool:
        if upload_id in self.stored.files():
            return True
        if self.where != "s3":
            return False
        endpoint = self.request.getfixturevalue("s3_endpoint")
        bucket = self.request.getfixturevalue("bucket")
        listed = s3t.client(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
        pending = s3t.multipart_uploads(endpoint, bucket)
        return any(upload_id in item["Key"] for item in [*listed, *pending])


@pytest.fixture
def held(request: pytest.FixtureRequest, where: str, stored: Stored) -> Bytes:
    return Bytes(request, where, stored)


def size_for(where: str) -> int:
    return 100 * 1024 if where == "s3" else 1000  # S3: above the lowered threshold


async def partial(tus: Tus, data: bytes, *, send: bool = True) -> str:
    url = await tus.create_url(len(data), headers=PARTIAL)
    if send:
        assert (await tus.patch(url, 0, data)).code == 204
    return url


async def final(tus: Tus, urls: list[str]) -> str:
    concat = "final;" + " ".join("/files/" + upload_id_of(u) for u in urls)
    res = await tus.request("POST", tus.collection, {"Upload-Concat": concat})
    assert res.code == 201, res.body
    return str(res.headers["Location"])


async def download(tus: Tus, client: AsyncHTTPClient, url: str) -> bytes:
    """The bytes of a complete upload (following S3's presigned redirect)."""
    res = await tus.get(url)
    if res.code == 302:
        res = await client.fetch(res.headers["Location"], raise_error=False)
    assert res.code == 200, res.code
    return bytes(res.body)


async def listed(client: AsyncHTTPClient, base_url: str, query: str = "") -> list[str]:
    code, body = await get_json(client, f"{base_url}/files/{query}")
    assert code == 200, body
    return [item["file_id"] for item in body["items"]]


async def assert_removed_after_grace(
    tus: Tus, ctx: AppContext, clock: FakeClock, held: Bytes, urls: list[str]
) -> None:
    ids = [upload_id_of(u) for u in urls]
    for upload_id in ids:
        info = await ctx.composer.state.get(upload_id)
        assert info is not None and info.expires_at is not None
        assert info.expires_at <= clock.now + REUSE_GRACE
    clock.now += REUSE_GRACE + 1
    assert await ctx.service.sweep_expired() == len(ids)
    for url, upload_id in zip(urls, ids, strict=True):
        assert (await tus.head(url)).code == 410
        assert not held.held(upload_id)


@pytest.mark.gen_test(timeout=60)
async def test_partials_of_an_assembled_final_are_hidden_then_removed(
    tus: Tus,
    ctx: AppContext,
    clock: FakeClock,
    held: Bytes,
    where: str,
    http_client: AsyncHTTPClient,
    base_url: str,
) -> None:
    size = size_for(where)
    one, two = secrets.token_bytes(size), secrets.token_bytes(size)
    parts = [await partial(tus, one), await partial(tus, two)]
    for url in parts:  # complete but unassembled: the normal expiry, not "never"
        _, status = await get_json(http_client, f"{base_url}/index-status/{upload_id_of(url)}")
        assert status["state"] == "complete" and status["expires_at"] is not None
    whole = await final(tus, parts)
    assert await download(tus, http_client, whole) == one + two
    ids = [upload_id_of(u) for u in parts]
    assert await listed(http_client, base_url) == [upload_id_of(whole)]
    # (the fake clock stands still: equal created_at, so the order is by id)
    assert sorted(await listed(http_client, base_url, "?include=partial")) == sorted(
        [*ids, upload_id_of(whole)]
    )
    code, body = await get_json(http_client, f"{base_url}/files/?include=everything")
    assert code == 400 and body["error"]["code"] == "ERR_INVALID_QUERY"
    await assert_removed_after_grace(tus, ctx, clock, held, parts)
    assert await download(tus, http_client, whole) == one + two  # the final does not depend on them
    assert held.held(upload_id_of(whole))


@pytest.mark.gen_test(timeout=60)
async def test_partials_of_a_lazily_assembled_final_are_removed(
    tus: Tus, ctx: AppContext, clock: FakeClock, held: Bytes, where: str, http_client: AsyncHTTPClient
) -> None:
    size = size_for(where)
    one, two = secrets.token_bytes(size), secrets.token_bytes(size)
    first = await partial(tus, one)
    second = await partial(tus, two, send=False)
    whole = await final(tus, [first, second])  # concatenation-unfinished
    assert (await tus.patch(second, 0, two)).code == 204
    head = await tus.head(whole)  # assembles
    assert head.headers["Upload-Offset"] == str(2 * size)
    await assert_removed_after_grace(tus, ctx, clock, held, [first, second])
    assert await download(tus, http_client, whole) == one + two


@pytest.mark.gen_test(timeout=60)
async def test_a_partial_may_be_reused_within_the_grace(tus: Tus, clock: FakeClock) -> None:
    data = secrets.token_bytes(1000)
    part = await partial(tus, data)
    await final(tus, [part])
    clock.now += REUSE_GRACE / 2
    again = await final(tus, [part, part])
    assert (await tus.get(again)).body == data + data
    clock.now += REUSE_GRACE
    res = await tus.request("POST", tus.collection, {"Upload-Concat": f"final;/files/{upload_id_of(part)}"})
    assert res.code == 400 and "expired" in json.loads(res.body)["error"]["message"]


@pytest.mark.gen_test(timeout=60)
async def test_an_unassembled_complete_partial_expires(
    tus: Tus, ctx: AppContext, clock: FakeClock, held: Bytes, where: str
) -> None:
    part = await partial(tus, secrets.token_bytes(size_for(where)))
    clock.now += EXPIRATION - 1
    assert await ctx.service.sweep_expired() == 0
    assert (await tus.head(part)).code == 200
    clock.now += 2
    assert (await tus.head(part)).code == 410
    assert await ctx.service.sweep_expired() == 1
    assert not held.held(upload_id_of(part))
