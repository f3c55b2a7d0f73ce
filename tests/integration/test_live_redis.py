"""Live events across instances: a ``/events`` subscriber on instance B sees an
upload made on instance A, through a real redis-server's pub/sub."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import tornado.websocket

from tests.integration import tushttp as tus
from tests.integration.test_multi_instance import Cluster
from tusd_py.events.live import LiveHub, RedisBridge

DEADLINE = 20.0


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str) -> Iterator[Cluster]:
    group = Cluster(tmp_path, redis_url, "ab")
    yield group
    group.stop()


async def events_until_finished(ws_url: str, files_url: str, data: bytes) -> tuple[str, list[dict[str, Any]]]:
    ws = await tornado.websocket.websocket_connect(ws_url)
    try:
        hello = json.loads(await asyncio.wait_for(ws.read_message(), DEADLINE) or "null")
        assert hello["type"] == "ready", hello

        def upload() -> str:
            url = tus.create(files_url, len(data))
            half = len(data) // 2
            assert tus.patch(url, 0, data[:half]).status == 204
            assert tus.patch(url, half, data[half:]).status == 204
            return url

        url = await asyncio.to_thread(upload)
        upload_id = url.rstrip("/").rsplit("/", 1)[-1]
        seen: list[dict[str, Any]] = []
        for _ in range(200):
            message = await asyncio.wait_for(ws.read_message(), DEADLINE)
            assert message is not None, f"socket closed after {seen}"
            seen.append(json.loads(message))
            if seen[-1]["type"] == "upload.finished" and seen[-1]["upload_id"] == upload_id:
                return upload_id, seen
        raise AssertionError(f"no upload.finished: {seen[-5:]}")
    finally:
        ws.close()


def test_subscriber_on_b_sees_upload_made_on_a(cluster: Cluster) -> None:
    a, b = cluster.servers
    data = b"live" * 5000
    ws_url = b.base_url.replace("http://", "ws://") + "/events"
    upload_id, seen = asyncio.run(events_until_finished(ws_url, a.files_url, data))
    types = [m["type"] for m in seen if m["upload_id"] == upload_id]
    assert types[0] == "upload.created" and "upload.progress" in types, types
    assert seen[-1]["offset"] == len(data) and seen[-1]["state"] == "complete"


def test_unreachable_redis_leaves_local_delivery_working() -> None:
    """Live events are best effort across instances: with Redis gone, publishing
    still returns at once, local subscribers get every event, and what could
    not be sent to the others is counted."""

    async def run() -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        client = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=0.5)
        bridge = RedisBridge(client, "tests:live")
        hub = LiveHub(outbound=bridge)
        await hub.start()
        sub = hub.subscribe("alice")
        hub.publish("alice", {"type": "upload.created", "upload_id": "u1"})
        event = await sub.next(5.0)
        assert event is not None and event["upload_id"] == "u1"
        deadline = asyncio.get_running_loop().time() + DEADLINE
        while bridge.dropped == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert bridge.dropped == 1
        await hub.aclose()
        await client.aclose()

    asyncio.run(run())
