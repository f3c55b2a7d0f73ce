"""``/healthz`` and ``/readyz``: readiness follows draining and the configured
dependencies (state store, storages, Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from storage.base import Capability, ChunkWriter
from tests import services
from tusd_py.cli.server import build_context
from tusd_py.core import errors
from tusd_py.core.config import Config
from tusd_py.core.models import UploadInfo
from tusd_py.ops.context import AppContext
from tusd_py.ops.health import readiness


class UnreachableStorage:
    """A relay backend (think S3) whose endpoint is down: only ``ping`` matters here."""

    name: ClassVar[str] = "s3"
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    async def create(self, info: UploadInfo) -> Mapping[str, str]:
        raise errors.StorageUnavailable()

    async def open_writer(self, info: UploadInfo) -> ChunkWriter:
        raise errors.StorageUnavailable()

    async def durable_offset(self, info: UploadInfo) -> int:
        raise errors.StorageUnavailable()

    async def finish(self, info: UploadInfo) -> Mapping[str, str]:
        raise errors.StorageUnavailable()

    async def read(self, info: UploadInfo, start: int, end: int) -> AsyncIterator[bytes]:
        raise errors.StorageUnavailable()
        yield b""

    async def ping(self) -> None:
        raise errors.StorageUnavailable("s3 endpoint http://127.0.0.1:9 refused the connection")

    async def close(self) -> None:
        return None

    async def concatenate(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> Mapping[str, str]:
        raise errors.StorageUnavailable()


async def ready(client: AsyncHTTPClient, base_url: str) -> tuple[int, dict[str, Any]]:
    res: HTTPResponse = await client.fetch(base_url + "/readyz", raise_error=False)
    return res.code, json.loads(res.body)


@pytest.mark.gen_test
async def test_ready_when_everything_answers(http_client: AsyncHTTPClient, base_url: str) -> None:
    code, body = await ready(http_client, base_url)
    assert code == 200
    assert body == {"ready": True, "checks": {"state": "ok", "storage.disk": "ok"}}
    assert (await http_client.fetch(base_url + "/healthz")).code == 200


@pytest.mark.gen_test
async def test_not_ready_while_draining(http_client: AsyncHTTPClient, base_url: str, ctx: AppContext) -> None:
    ctx.lifecycle.draining = True
    code, body = await ready(http_client, base_url)
    assert code == 503 and body["ready"] is False and body["checks"]["lifecycle"] == "draining"
    assert (await http_client.fetch(base_url + "/healthz")).code == 200


@pytest.mark.gen_test
async def test_not_ready_when_a_storage_is_down(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext
) -> None:
    ctx.composer.storages["s3"] = UnreachableStorage()
    code, body = await ready(http_client, base_url)
    assert code == 503
    assert body["checks"]["storage.s3"] == "s3 endpoint http://127.0.0.1:9 refused the connection"
    assert body["checks"]["storage.disk"] == "ok"


@pytest.mark.gen_test
async def test_not_ready_when_the_state_store_fails(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken() -> None:
        raise errors.StateStoreError("database is locked")

    monkeypatch.setattr(ctx.composer.state, "ping", broken)
    code, body = await ready(http_client, base_url)
    assert code == 503 and body["checks"]["state"] == "database is locked"


@pytest.mark.gen_test
async def test_a_hung_dependency_times_out(ctx: AppContext) -> None:
    async def hang() -> None:
        await asyncio.Event().wait()

    ctx.probes["slow"] = hang
    ok, checks = await readiness(ctx, timeout=0.2)
    assert not ok and checks["slow"] == "no answer within 0.2s" and checks["state"] == "ok"


@pytest.mark.gen_test(timeout=60)
async def test_not_ready_when_configured_redis_goes_down(tus_config: Config) -> None:
    """A private redis-server: ready while it runs, not ready once it stopped."""
    with services.redis_server() as url:
        config = dataclasses.replace(tus_config, redis=dataclasses.replace(tus_config.redis, url=url))
        ctx = await build_context(config)
        try:
            assert await readiness(ctx) == (
                True,
                {"state": "ok", "storage.disk": "ok", "redis": "ok"},
            )
        except BaseException:
            await ctx.aclose()
            raise
    try:
        ok, checks = await readiness(ctx)
        assert not ok and checks["redis"].startswith("redis unreachable")
    finally:
        await ctx.aclose()
