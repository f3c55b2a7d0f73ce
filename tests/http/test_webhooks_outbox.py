"""A webhook is not lost when the job store is down at the moment of its event.

The job store is a real redis-server owned by the test (the upload records
stay in SQLite, so the upload itself can finish meanwhile). Redis is paused
(SIGSTOP: connections hang until the client's timeout) or stopped (refused),
the upload is finished, the ``upload.finished`` delivery waits in the job
outbox (``tusd_py_jobs_outbox_pending`` on ``/metrics``), Redis comes back,
and the receiver gets the event, signed. Before the outbox the event was
logged as "not queued" and never delivered."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.http.jobs_support import ALICE, FAST_JOBS, SECRET, Receiver, consuming_ctx, receiving
from tests.integration.procs import RedisProcess
from tests.restapi import eventually
from tests.tusclient import Tus
from tusd_py.core.config import Config
from tusd_py.events.hooks.signing import verify
from tusd_py.jobs.redis_store import RedisJobStore
from tusd_py.ops.context import AppContext

#: Socket timeouts of the job store's Redis client: how long a write to a paused Redis hangs.
STORE_TIMEOUT = 1.0
PENDING = re.compile(rb"^tusd_py_jobs_outbox_pending (\S+)$", re.M)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with receiving() as pair:
        yield pair


@pytest.fixture
def config_overrides(receiver: tuple[Receiver, str]) -> dict[str, Any]:
    return {**FAST_JOBS, "hooks.url": [receiver[1]], "hooks.secret": SECRET}


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config, own_redis: RedisProcess) -> Iterator[AppContext]:
    client = redis.Redis.from_url(
        own_redis.url, socket_timeout=STORE_TIMEOUT, socket_connect_timeout=STORE_TIMEOUT
    )
    store = RedisJobStore(client, f"outbox-{uuid.uuid4().hex[:8]}:")
    yield from consuming_ctx(io_loop, tus_config, job_store=store)


async def outbox_pending(client: AsyncHTTPClient, base_url: str) -> float:
    res = await client.fetch(f"{base_url}/metrics")
    found = PENDING.search(res.body)
    assert found is not None, res.body.decode()[:2000]
    return float(found.group(1))


@pytest.mark.parametrize("outage", ["paused", "stopped"])
@pytest.mark.gen_test(timeout=90)
async def test_upload_finished_reaches_the_receiver_after_the_job_store_comes_back(
    outage: str,
    tus: Tus,
    http_client: AsyncHTTPClient,
    base_url: str,
    own_redis: RedisProcess,
    receiver: tuple[Receiver, str],
) -> None:
    record, _ = receiver
    url = await tus.create_url(6, headers=ALICE)
    file_id = url.rsplit("/", 1)[-1]

    async def created() -> bool:
        return bool(record.delivered("upload.created"))

    await eventually(created, timeout=30, what="upload.created delivered while Redis is up")
    assert own_redis.proc is not None
    if outage == "paused":
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
    else:
        own_redis.kill()
    try:
        assert (await tus.patch(url, 0, b"abcdef", ALICE)).code == 204

        async def held() -> bool:
            return await outbox_pending(http_client, base_url) >= 1

        await eventually(held, timeout=30, what="upload.finished held in the outbox")
        assert record.delivered("upload.finished") == []
    finally:
        if outage == "paused":
            os.kill(own_redis.proc.pid, signal.SIGCONT)
        else:
            await asyncio.get_running_loop().run_in_executor(None, own_redis.start)  # same port

    async def finished() -> bool:
        return bool(record.delivered("upload.finished"))

    await eventually(finished, timeout=45, what="upload.finished delivered after Redis came back")
    delivery = record.delivered("upload.finished")[0]
    assert verify(SECRET, delivery.signature, delivery.body, now=time.time()), delivery.signature
    event = json.loads(delivery.body)
    assert event["data"]["file_id"] == file_id and event["data"]["size"] == 6

    async def drained() -> bool:
        return await outbox_pending(http_client, base_url) == 0

    await eventually(drained, timeout=30, what="outbox drained")
