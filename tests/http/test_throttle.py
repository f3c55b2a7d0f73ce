"""Tiers and throttling over HTTP, against both limit backends (in-process and Redis)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.fakes import FakeClock
from tests.streams import OpenBody, open_patch, wait_until
from tests.tusclient import Tus
from tusd_py.auth.tokens import mint_token
from tusd_py.cli.server import build_context
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext
from tusd_py.throttle import ThrottleGuard

SECRET = "throttle-secret-" + "z" * 40
BODY = 1 << 20


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def limits() -> dict[str, Any]:
    """Per-test limit overrides (``throttle.*`` / ``server.*``)."""
    return {}


@pytest.fixture
def config_overrides(backend: str, redis_url: str, limits: dict[str, Any]) -> dict[str, Any]:
    overrides: dict[str, Any] = {"auth.enabled": True, "auth.secret": SECRET, "throttle.lease_ttl": 2.0}
    if backend == "redis":
        overrides["redis.url"] = redis_url
        overrides["redis.prefix"] = f"t{secrets.token_hex(4)}:"
    overrides.update(limits)
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


def auth(config: Config, user: str, tier: str = "basic") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(config, user=user, tier=tier, ttl=600)}"}


def error(res: HTTPResponse) -> dict[str, str]:
    body: dict[str, dict[str, str]] = json.loads(res.body)
    return body["error"]


def streams(ctx: AppContext) -> int:
    guard = ctx.guard
    assert isinstance(guard, ThrottleGuard)
    return guard.streams


class Held:
    """Open request bodies, closed at the end of the test."""

    def __init__(self) -> None:
        self.bodies: list[OpenBody] = []

    async def open(self, url: str, headers: dict[str, str]) -> None:
        self.bodies.append(await open_patch(url, 0, BODY, b"x" * 10, headers))

    async def close(self) -> None:
        for body in self.bodies:
            await body.close()
        self.bodies.clear()


@pytest.fixture
def held(io_loop: tornado.ioloop.IOLoop) -> Iterator[Held]:
    bodies = Held()
    yield bodies
    io_loop.run_sync(bodies.close)


async def hold_streams(tus: Tus, ctx: AppContext, held: Held, headers: dict[str, str], n: int) -> None:
    for _ in range(n):
        await held.open(await tus.create_url(BODY, headers=headers), headers)
    await wait_until(lambda: ctx.lifecycle.active_streams == n, what=f"{n} streams to be open")


@pytest.mark.parametrize("limits", [{"throttle.ip_creations_per_minute": 0}])
@pytest.mark.gen_test(timeout=60)
async def test_basic_user_sixth_concurrent_upload_is_429(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config, ctx: AppContext, held: Held
) -> None:
    tus = Tus(http_client, base_url)
    alice = auth(tus_config, "alice")
    await hold_streams(tus, ctx, held, alice, 5)
    sixth = await tus.create_url(3, headers=alice)
    res = await tus.patch(sixth, 0, b"abc", alice)
    assert res.code == 429 and error(res)["code"] == "ERR_CONCURRENCY_LIMITED"
    assert "tier basic allows 5 uploads in progress" in error(res)["message"]
    assert int(res.headers["Retry-After"]) >= 1
    # creation-with-upload is refused before the upload exists
    before = len(await ctx.composer.state.list_ids("", 100))
    res = await tus.create(3, headers=alice, body=b"abc")
    assert res.code == 429 and "Location" not in res.headers
    assert len(await ctx.composer.state.list_ids("", 100)) == before
    # another user is not affected
    bob = auth(tus_config, "bob")
    assert (await tus.patch(await tus.create_url(3, headers=bob), 0, b"abc", bob)).code == 204
    # slots come back when the bodies end
    await held.close()
    await wait_until(lambda: streams(ctx) == 0, what="slots to be released")
    assert (await tus.patch(sixth, 0, b"abc", alice)).code == 204


@pytest.mark.parametrize("limits", [{"throttle.ip_creations_per_minute": 0}])
@pytest.mark.gen_test(timeout=90)
async def test_premium_user_gets_twenty_concurrent_uploads(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config, ctx: AppContext, held: Held
) -> None:
    tus = Tus(http_client, base_url)
    pat = auth(tus_config, "pat", "premium")
    await hold_streams(tus, ctx, held, pat, 20)
    res = await tus.patch(await tus.create_url(3, headers=pat), 0, b"abc", pat)
    assert res.code == 429 and "tier premium allows 20" in error(res)["message"]


@pytest.mark.parametrize("limits", [{"server.max_streams": 2, "throttle.ip_creations_per_minute": 0}])
@pytest.mark.gen_test(timeout=60)
async def test_server_wide_stream_cap_is_503(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config, ctx: AppContext, held: Held
) -> None:
    tus = Tus(http_client, base_url)
    await hold_streams(tus, ctx, held, auth(tus_config, "pat", "premium"), 2)
    bob = auth(tus_config, "bob")
    res = await tus.patch(await tus.create_url(3, headers=bob), 0, b"abc", bob)
    assert res.code == 503 and error(res)["code"] == "ERR_SERVER_BUSY"
    assert int(res.headers["Retry-After"]) >= 1 and "at most 2 uploads" in error(res)["message"]
    assert (await tus.head(tus.collection + "0" * 32, bob)).code == 404  # HEADs are unaffected


@pytest.mark.parametrize("limits", [{"throttle.basic_max_size": 1000, "throttle.premium_max_size": 5000}])
@pytest.mark.gen_test
async def test_tier_max_size_at_creation_and_mid_stream(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    tus = Tus(http_client, base_url)
    alice, pat = auth(tus_config, "alice"), auth(tus_config, "pat", "premium")
    res = await tus.create(1001, headers=alice)
    assert res.code == 413 and error(res)["code"] == "ERR_MAX_SIZE_EXCEEDED"
    assert "1000" in error(res)["message"]
    assert (await tus.create(1001, headers=pat)).code == 201
    assert (await tus.create(1000, headers=alice)).code == 201

    # deferred length: the limit applies while the body streams (chunked, no Content-Length)
    url = await tus.create_url(None, headers=alice)
    chunks = [b"a" * 600, b"b" * 600]

    async def produce(write: Any) -> None:
        for chunk in chunks:
            await write(chunk)

    res = await http_client.fetch(
        url,
        method="PATCH",
        headers={
            **alice,
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
        body_producer=produce,
        raise_error=False,
    )
    assert res.code == 413 and error(res)["code"] == "ERR_MAX_SIZE_EXCEEDED", res.body
    head = await tus.head(url, alice)
    assert int(head.headers["Upload-Offset"]) <= 1000
    # and up front when the body declares its length
    res = await tus.patch(url, int(head.headers["Upload-Offset"]), b"c" * 1001, alice)
    assert res.code == 413


@pytest.mark.gen_test
async def test_eleventh_creation_from_one_ip_is_429(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config, clock: FakeClock
) -> None:
    tus = Tus(http_client, base_url)
    urls = []
    for i in range(10):
        res = await tus.create(5, headers=auth(tus_config, f"user{i}"))
        assert res.code == 201
        assert res.headers["RateLimit-Limit"] == "10"
        assert res.headers["RateLimit-Remaining"] == str(9 - i)
        urls.append((res.headers["Location"], auth(tus_config, f"user{i}")))
    res = await tus.create(5, headers=auth(tus_config, "user10"))
    assert res.code == 429 and error(res)["code"] == "ERR_RATE_LIMITED"
    assert "10 upload creations per minute per IP address" in error(res)["message"]
    assert 1 <= int(res.headers["Retry-After"]) <= 60
    assert res.headers["RateLimit-Limit"] == "10" and res.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(res.headers["RateLimit-Reset"]) <= 60
    # HEAD and PATCH of existing uploads are not limited by the creation limit
    for url, headers in urls:
        assert (await tus.head(url, headers)).code == 200
        assert (await tus.patch(url, 0, b"hello", headers)).code == 204
    # a minute later (injected clock) creation works again
    clock.advance(60)
    assert (await tus.create(5, headers=auth(tus_config, "user10"))).code == 201


@pytest.mark.parametrize("limits", [{"throttle.ip_requests_per_minute": 5}])
@pytest.mark.gen_test
async def test_a_flood_of_bad_tokens_is_throttled_per_ip(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config, clock: FakeClock
) -> None:
    tus = Tus(http_client, base_url)
    bad = {"Authorization": "Bearer not.a.token"}
    codes = [(await tus.create(5, headers=bad)).code for _ in range(5)]
    codes.append((await tus.head("/files/" + "0" * 32, bad)).code)
    assert codes == [401] * 5 + [429]
    res = await tus.create(5, headers={})
    assert res.code == 429 and "per IP address" in error(res)["message"]
    clock.advance(60)
    assert (await tus.create(5, headers=bad)).code == 401


@pytest.mark.parametrize("limits", [{"throttle.ip_requests_per_minute": 4}])
@pytest.mark.gen_test
async def test_heads_answered_below_the_handler_count_once(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    """A HEAD answered by handlers/quickhead.py is counted like any request;
    the one over the limit is refused (429) by the handler it is handed to."""
    tus = Tus(http_client, base_url)
    user = auth(tus_config, "user11")
    url = await tus.create_url(10, headers=user)  # the first request of the window
    heads = [await tus.head(url, user) for _ in range(4)]
    assert [h.code for h in heads] == [200, 200, 200, 429]
    assert [h.headers["RateLimit-Remaining"] for h in heads] == ["2", "1", "0", "0"]
    assert "Retry-After" in heads[3].headers


CLIENT = """
import socket, sys
host, port, path, token = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
s = socket.create_connection((host, port))
head = (
    f"PATCH {path} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\nTus-Resumable: 1.0.0\\r\\n"
    "Content-Type: application/offset+octet-stream\\r\\nUpload-Offset: 0\\r\\n"
    f"Content-Length: 1048576\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n"
)
s.sendall(head.encode() + b"x" * 4096)
print("sent", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("limits", [{"throttle.basic_concurrency": 1, "throttle.lease_ttl": 1.0}])
@pytest.mark.gen_test(timeout=60)
async def test_client_killed_mid_patch_frees_its_slot(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config, ctx: AppContext
) -> None:
    tus = Tus(http_client, base_url)
    alice = auth(tus_config, "alice")
    url = await tus.create_url(BODY, headers=alice)
    parts = urlsplit(url)
    token = alice["Authorization"].split()[1]
    with subprocess.Popen(
        [sys.executable, "-c", CLIENT, str(parts.hostname), str(parts.port), parts.path, token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
            assert line == b"sent\n"
            await wait_until(lambda: streams(ctx) == 1, what="the killed client's stream to start")
            other = await tus.create_url(3, headers=alice)
            assert (await tus.patch(other, 0, b"abc", alice)).code == 429
        finally:
            proc.kill()
            proc.wait(10)
    await wait_until(lambda: streams(ctx) == 0, timeout=30, what="the slot to be freed")
    assert (await tus.patch(other, 0, b"abc", alice)).code == 204
    head = await tus.head(url, alice)
    assert 0 < int(head.headers["Upload-Offset"]) <= 4096
