"""GET /files/: the caller's uploads, cursor pages stable under concurrent inserts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.restapi import bearer, get_json, multi_user_ctx
from tests.tusclient import Tus, metadata
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

ALICE = bearer("alice")
BOB = bearer("bob")
ADMIN = bearer("root", "admin")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Creation rate limits off: this module creates dozens of uploads per user."""
    return {"throttle.ip_creations_per_minute": 0, "throttle.basic_creations_per_minute": 0}


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from multi_user_ctx(io_loop, tus_config)


async def create(tus: Tus, who: dict[str, str], length: int = 10, **meta: str) -> str:
    headers = dict(who)
    if meta:
        headers["Upload-Metadata"] = metadata(**meta)
    url = await tus.create_url(length, headers=headers)
    return url.rsplit("/", 1)[-1]


async def all_pages(
    client: AsyncHTTPClient, base_url: str, who: dict[str, str], query: str = "", limit: int = 3
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        url = f"{base_url}/files/?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        code, page = await get_json(client, url, who)
        assert code == 200, page
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


@pytest.mark.gen_test(timeout=120)
async def test_every_file_exactly_once_while_uploads_are_created(
    http_client: AsyncHTTPClient, base_url: str
) -> None:
    tus = Tus(http_client, base_url)
    existing = [await create(tus, ALICE) for _ in range(20)]
    stop = asyncio.Event()
    created_meanwhile: list[str] = []

    async def keep_creating() -> None:
        for _ in range(200):
            if stop.is_set():
                return
            created_meanwhile.append(await create(tus, ALICE))

    creator = asyncio.ensure_future(keep_creating())
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(1000):
        url = f"{base_url}/files/?limit=2" + (f"&cursor={cursor}" if cursor else "")
        code, page = await get_json(http_client, url, ALICE)
        assert code == 200
        seen += [item["file_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None or set(existing) <= set(seen):
            break
        await asyncio.sleep(0)  # let the creator interleave between pages
    stop.set()
    await creator
    assert len(seen) == len(set(seen)), "an upload was listed twice"
    assert set(existing) <= set(seen), "an upload that existed before paging was missed"
    assert set(seen) <= set(existing) | set(created_meanwhile)
    assert created_meanwhile, "no upload was created while paging"
    # A full walk afterwards lists everything exactly once, oldest first.
    full = [item["file_id"] for item in await all_pages(http_client, base_url, ALICE, limit=7)]
    assert sorted(full) == sorted(existing + created_meanwhile) and len(full) == len(set(full))
    assert full[: len(existing)] == existing


@pytest.mark.gen_test
async def test_listing_is_per_user_and_admins_see_all(http_client: AsyncHTTPClient, base_url: str) -> None:
    tus = Tus(http_client, base_url)
    alices = {await create(tus, ALICE) for _ in range(3)}
    bobs = {await create(tus, BOB) for _ in range(2)}
    assert {i["file_id"] for i in await all_pages(http_client, base_url, ALICE)} == alices
    assert {i["file_id"] for i in await all_pages(http_client, base_url, BOB)} == bobs
    assert {i["file_id"] for i in await all_pages(http_client, base_url, ADMIN)} == alices | bobs
    code, _ = await get_json(http_client, f"{base_url}/files/")
    assert code == 401


@pytest.mark.gen_test
async def test_filters_by_state_and_visibility(http_client: AsyncHTTPClient, base_url: str) -> None:
    tus = Tus(http_client, base_url)
    done = await create(tus, ALICE, length=0)
    public = await create(tus, ALICE, visibility="public")
    private = await create(tus, ALICE)
    ids = lambda items: {i["file_id"] for i in items}  # noqa: E731
    assert ids(await all_pages(http_client, base_url, ALICE, "&state=complete")) == {done}
    assert ids(await all_pages(http_client, base_url, ALICE, "&state=uploading")) == {public, private}
    assert ids(await all_pages(http_client, base_url, ALICE, "&visibility=public")) == {public}
    assert ids(await all_pages(http_client, base_url, ALICE, "&visibility=private")) == {done, private}
    item = (await all_pages(http_client, base_url, ALICE, "&visibility=public"))[0]
    assert item["state"] == "uploading" and item["size"] == 10 and item["percent"] == 0.0


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=x", "state=done", "visibility=secret", "cursor=!!!", "cursor=e30"],
)
@pytest.mark.gen_test
async def test_bad_parameters_are_400(http_client: AsyncHTTPClient, base_url: str, query: str) -> None:
    code, body = await get_json(http_client, f"{base_url}/files/?{query}", ALICE)
    assert code == 400 and body["error"]["code"] == "ERR_INVALID_QUERY"


@pytest.mark.gen_test
async def test_post_on_collection_still_needs_tus(http_client: AsyncHTTPClient, base_url: str) -> None:
    res = await http_client.fetch(
        f"{base_url}/files/",
        method="POST",
        body=b"",
        headers={**ALICE, "Upload-Length": "1"},
        raise_error=False,
    )
    assert res.code == 412 and json.loads(res.body)["error"]["code"] == "ERR_UNSUPPORTED_VERSION"
