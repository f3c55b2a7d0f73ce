"""Limits shared through a real redis-server: two app instances, and a crashed one."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import tornado.testing
from tornado.httpclient import AsyncHTTPClient

from handlers.app import make_app
from tests.services import free_port, wait_for_port
from tests.streams import OpenBody, eventually, open_patch, wait_until
from tests.tusclient import Tus
from tusd_py.auth.tokens import mint_token
from tusd_py.cli.server import build_context, http_server
from tusd_py.core.config import Config, load_config
from tusd_py.ops.context import AppContext
from tusd_py.throttle.leases import RedisLeaseStore

ROOT = Path(__file__).resolve().parents[2]
SECRET = "shared-secret-" + "q" * 40


def instance_config(tmp: Path, name: str, redis_url: str, prefix: str, **extra: Any) -> Config:
    overrides: dict[str, Any] = {
        "server.data_dir": str(tmp / name),
        "auth.enabled": True,
        "auth.secret": SECRET,
        "redis.url": redis_url,
        "redis.prefix": prefix,
        "server.progress_interval": 0.05,
    }
    overrides.update(extra)
    return load_config(environ={}, overrides=overrides)


@contextlib.asynccontextmanager
async def app_instance(config: Config) -> AsyncIterator[tuple[str, AppContext]]:
    """An in-process app on a loopback port; yields its base URL and context."""
    ctx = await build_context(config)
    sock, port = tornado.testing.bind_unused_port("127.0.0.1")
    server = http_server(make_app(ctx), config)
    server.add_socket(sock)
    try:
        yield f"http://127.0.0.1:{port}", ctx
    finally:
        server.stop()
        await server.close_all_connections()
        await ctx.lifecycle.join_tasks(10.0)
        await ctx.aclose()


def auth(config: Config, user: str, tier: str = "basic") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(config, user=user, tier=tier, ttl=600)}"}


@pytest.mark.gen_test(timeout=90)
async def test_two_app_instances_share_limits(
    http_client: AsyncHTTPClient, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"t{secrets.token_hex(4)}:"
    config_a = instance_config(tmp_path, "a", redis_url, prefix)
    config_b = instance_config(tmp_path, "b", redis_url, prefix)
    bodies: list[OpenBody] = []
    async with app_instance(config_a) as (url_a, ctx_a), app_instance(config_b) as (url_b, ctx_b):
        a, b = Tus(http_client, url_a), Tus(http_client, url_b)
        # creations per IP: 5 on each instance, the 11th is refused by either
        for i in range(5):
            assert (await a.create(1 << 20, headers=auth(config_a, f"u{i}"))).code == 201
            assert (await b.create(1 << 20, headers=auth(config_a, f"v{i}"))).code == 201
        res = await a.create(5, headers=auth(config_a, "late"))
        assert res.code == 429 and res.headers["RateLimit-Remaining"] == "0"
        assert (await b.create(5, headers=auth(config_a, "late"))).code == 429

    # new instances (fresh creation window: another prefix), same user streaming on both
    prefix = f"t{secrets.token_hex(4)}:"
    relaxed = {"throttle.ip_creations_per_minute": 0}
    config_a = instance_config(tmp_path, "c", redis_url, prefix, **relaxed)
    config_b = instance_config(tmp_path, "d", redis_url, prefix, **relaxed)
    async with app_instance(config_a) as (url_a, ctx_a), app_instance(config_b) as (url_b, ctx_b):
        a, b = Tus(http_client, url_a), Tus(http_client, url_b)
        alice = auth(config_a, "alice")
        try:
            for tus, count in ((a, 3), (b, 2)):
                for _ in range(count):
                    url = await tus.create_url(1 << 20, headers=alice)
                    bodies.append(await open_patch(url, 0, 1 << 20, b"x" * 10, alice))
            await wait_until(
                lambda: (ctx_a.lifecycle.active_streams, ctx_b.lifecycle.active_streams) == (3, 2),
                what="five streams on two instances",
            )
            for tus in (a, b):
                res = await tus.patch(await tus.create_url(3, headers=alice), 0, b"abc", alice)
                assert res.code == 429 and b"tier basic allows 5" in res.body
        finally:
            for body in bodies:
                await body.close()


@contextlib.contextmanager
def serve_process(tmp: Path, redis_url: str, prefix: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "TUSD_PY_AUTH_SECRET": SECRET,
            "TUSD_PY_REDIS_URL": redis_url,
            "TUSD_PY_REDIS_PREFIX": prefix,
            "TUSD_PY_THROTTLE_BASIC_CONCURRENCY": "1",
            "TUSD_PY_THROTTLE_LEASE_TTL": "1.5",
        }
    )
    cmd = [sys.executable, "-m", "tusd_py", "serve", "--port", str(port), "--data-dir", str(tmp / "proc")]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            wait_for_port(port, timeout=60)
            yield f"http://127.0.0.1:{port}", proc
        finally:
            proc.kill()
            proc.wait(10)


@pytest.mark.gen_test(timeout=120)
async def test_crashed_instance_frees_its_slots_within_the_lease_ttl(
    http_client: AsyncHTTPClient, redis_url: str, tmp_path: Path
) -> None:
    """kill -9 of a server mid-PATCH: nobody releases its lease; it lapses by itself."""
    prefix = f"t{secrets.token_hex(4)}:"
    config = instance_config(
        tmp_path, "live", redis_url, prefix, **{"throttle.basic_concurrency": 1, "throttle.lease_ttl": 1.5}
    )
    alice = auth(config, "alice")
    client = aioredis.Redis.from_url(redis_url)
    leases = RedisLeaseStore(client, prefix)
    body: OpenBody | None = None
    try:
        with serve_process(tmp_path, redis_url, prefix) as (url_dead, proc):
            dead = Tus(http_client, url_dead)
            upload = await dead.create_url(1 << 20, headers=alice)
            body = await open_patch(upload, 0, 1 << 20, b"x" * 10, alice)

            async def leased() -> bool:
                return await leases.count("alice", time.time()) == 1

            await eventually(leased, what="the doomed instance to take the lease")
            proc.kill()
            proc.wait(10)
        async with app_instance(config) as (url_live, _ctx):
            live = Tus(http_client, url_live)
            target = await live.create_url(3, headers=alice)

            async def accepted() -> bool:
                res = await live.patch(target, 0, b"abc", alice)
                assert res.code in (204, 429), res.body
                return res.code == 204

            await eventually(accepted, timeout=60, what="the crashed instance's lease to lapse")
    finally:
        if body is not None:
            await body.close()
        await client.aclose()
