"""Live events: the ``/events`` WebSocket and SSE on ``/index-status/{id}``.

In-process server with JWT auth; uploads are sent on other connections (the
tus client) while ``tornado.websocket`` clients listen. Absence of another
user's events is shown by order, not by waiting: the hub delivers in publish
order, so once a socket sees its own later upload finish, anything about the
earlier upload would already have arrived.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

import handlers.live
from tests.http.conftest import upload_id_of
from tests.tusclient import Tus
from tusd_py.auth.tokens import mint_token
from tusd_py.core.config import Config
from tusd_py.events.live.hub import QUEUE_SIZE
from tusd_py.ops.context import AppContext

SECRET = "live-secret-" + "x" * 40
DEADLINE = 10.0
WS = tornado.websocket.WebSocketClientConnection


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "auth.enabled": True,
        "auth.secret": SECRET,
        "server.cors_origins": ["http://allowed.example"],
        "throttle.ip_creations_per_minute": 0,
        "throttle.basic_creations_per_minute": 0,
    }


def token(config: Config, user: str, tier: str = "basic") -> str:
    return mint_token(config, user=user, tier=tier, ttl=600)


def bearer(config: Config, user: str, tier: str = "basic") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(config, user, tier)}"}


async def connect(base_url: str, headers: dict[str, str] | None = None) -> WS:
    url = base_url.replace("http://", "ws://") + "/events"
    return await tornado.websocket.websocket_connect(HTTPRequest(url, headers=headers or {}))


async def receive(ws: WS) -> dict[str, Any] | None:
    message = await asyncio.wait_for(ws.read_message(), DEADLINE)
    return None if message is None else json.loads(message)


async def ready(ws: WS) -> dict[str, Any]:
    hello = await receive(ws)
    assert hello is not None and hello["type"] == "ready", hello
    return hello


async def until_finished(ws: WS, upload_id: str) -> list[dict[str, Any]]:
    """Messages up to and including ``upload_id``'s ``upload.finished`` (bounded)."""
    seen: list[dict[str, Any]] = []
    for _ in range(1000):
        message = await receive(ws)
        assert message is not None, f"socket closed after {seen}"
        seen.append(message)
        if message["type"] == "upload.finished" and message["upload_id"] == upload_id:
            return seen
    raise AssertionError(f"no upload.finished for {upload_id}: {seen[-5:]}")


async def upload_in_chunks(tus: Tus, headers: dict[str, str], chunks: int = 4, size: int = 4096) -> str:
    url = await tus.create_url(chunks * size, headers=headers)
    for index in range(chunks):
        res = await tus.patch(url, index * size, bytes([index]) * size, headers)
        assert res.code == 204, res.body
    return upload_id_of(url)


@pytest.mark.gen_test(timeout=30)
async def test_socket_sees_own_uploads_from_another_connection_and_only_those(
    tus: Tus, base_url: str, tus_config: Config
) -> None:
    alice = await connect(base_url, bearer(tus_config, "alice"))
    bob = await connect(base_url, bearer(tus_config, "bob"))
    admin = await connect(base_url, bearer(tus_config, "root", "admin"))
    assert (await ready(alice))["user"] == "alice"
    await ready(bob)
    assert (await ready(admin))["admin"] is True

    alices = await upload_in_chunks(tus, bearer(tus_config, "alice"))
    bobs = await upload_in_chunks(tus, bearer(tus_config, "bob"))

    seen = await until_finished(alice, alices)
    types = [m["type"] for m in seen]
    assert types[0] == "upload.created" and "upload.progress" in types, types
    final = seen[-1]
    assert final["offset"] == final["length"] == 4 * 4096 and final["state"] == "complete"
    assert set(final) >= {"type", "upload_id", "offset", "length", "state", "at"}
    assert {m["upload_id"] for m in seen} == {alices}

    bob_seen = await until_finished(bob, bobs)
    assert {m["upload_id"] for m in bob_seen} == {bobs}, "bob saw alice's upload"
    admin_seen = await until_finished(admin, bobs)
    assert {m["upload_id"] for m in admin_seen} == {alices, bobs}
    for ws in (alice, bob, admin):
        ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_first_message_token_authenticates(tus: Tus, base_url: str, tus_config: Config) -> None:
    ws = await connect(base_url)
    await ws.write_message(json.dumps({"token": token(tus_config, "carol")}))
    assert (await ready(ws))["user"] == "carol"
    upload = await upload_in_chunks(tus, bearer(tus_config, "carol"), chunks=1)
    assert (await until_finished(ws, upload))[0]["type"] == "upload.created"
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_bad_first_message_token_closes_4401(base_url: str) -> None:
    ws = await connect(base_url)
    await ws.write_message(json.dumps({"token": "not-a-jwt"}))
    assert await receive(ws) is None
    assert ws.close_code == 4401 and ws.close_reason, (ws.close_code, ws.close_reason)
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_first_message_without_token_closes_4400(base_url: str) -> None:
    ws = await connect(base_url)
    await ws.write_message("hello")
    assert await receive(ws) is None
    assert ws.close_code == 4400 and "token" in (ws.close_reason or "")
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_silent_socket_is_closed_with_a_reason(base_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handlers.live, "AUTH_TIMEOUT", 0.2)
    ws = await connect(base_url)
    assert await receive(ws) is None
    assert ws.close_code == 4401 and "token" in (ws.close_reason or ""), ws.close_reason
    ws.close()


async def handshake(http_client: AsyncHTTPClient, base_url: str, headers: dict[str, str]) -> HTTPResponse:
    """A WebSocket upgrade request by hand (a refused ``websocket_connect``
    leaves an unclosed connection object behind)."""
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    return await http_client.fetch(f"{base_url}/events", headers={**upgrade, **headers}, raise_error=False)


@pytest.mark.gen_test(timeout=30)
async def test_bad_header_token_is_refused_before_upgrade(
    base_url: str, http_client: AsyncHTTPClient
) -> None:
    refused = await handshake(http_client, base_url, {"Authorization": "Bearer not-a-jwt"})
    assert refused.code == 401
    assert json.loads(refused.body)["error"]["code"] == "ERR_UNAUTHENTICATED"


@pytest.mark.gen_test(timeout=30)
async def test_origin_check_follows_cors_allow_list(
    base_url: str, tus_config: Config, http_client: AsyncHTTPClient
) -> None:
    headers = bearer(tus_config, "alice")
    refused = await handshake(http_client, base_url, {**headers, "Origin": "http://evil.example"})
    assert refused.code == 403
    assert json.loads(refused.body)["error"]["code"] == "ERR_FORBIDDEN"
    listed = await connect(base_url, {**headers, "Origin": "http://allowed.example"})
    await ready(listed)
    same = await connect(base_url, {**headers, "Origin": base_url})
    await ready(same)
    listed.close()
    same.close()


@pytest.mark.gen_test(timeout=60)
async def test_stalled_subscriber_drops_old_progress_and_uploads_go_on(
    tus: Tus, base_url: str, tus_config: Config, ctx: AppContext
) -> None:
    stalled = await connect(base_url, bearer(tus_config, "alice"))  # never read again
    watcher = await connect(base_url, bearer(tus_config, "alice"))
    await ready(watcher)
    for batch in range(40):
        for n in range(500):
            ctx.live.publish("alice", {"type": "upload.progress", "upload_id": f"u{batch}-{n}", "offset": n})
        await asyncio.sleep(0)
    upload = await upload_in_chunks(tus, bearer(tus_config, "alice"), chunks=2)
    await until_finished(watcher, upload)
    subs = ctx.live.subscriptions()
    assert len(subs) == 2
    assert all(sub.pending() <= QUEUE_SIZE for sub in subs)
    assert max(sub.dropped for sub in subs) > 0
    stalled.close()
    watcher.close()


@pytest.mark.gen_test(timeout=30)
async def test_sse_streams_status_until_complete(
    tus: Tus, base_url: str, tus_config: Config, http_client: AsyncHTTPClient
) -> None:
    headers = bearer(tus_config, "alice")
    url = await tus.create_url(3 * 1024, headers=headers)
    upload = upload_id_of(url)
    buffer = bytearray()
    offsets: list[int] = []
    got: dict[int, asyncio.Event] = {}

    def on_chunk(chunk: bytes) -> None:
        buffer.extend(chunk)
        while b"\n\n" in buffer:
            block, _, rest = bytes(buffer).partition(b"\n\n")
            buffer[:] = rest
            lines = dict(line.split(": ", 1) for line in block.decode().splitlines() if ": " in line)
            if lines.get("event") == "status":
                offset = json.loads(lines["data"])["offset"]
                offsets.append(offset)
                got.setdefault(offset, asyncio.Event()).set()

    stream = http_client.fetch(
        HTTPRequest(
            f"{base_url}/index-status/{upload}",
            headers={**headers, "Accept": "text/event-stream"},
            streaming_callback=on_chunk,
            request_timeout=DEADLINE,
        )
    )
    for index in range(3):
        await asyncio.wait_for(got.setdefault(index * 1024, asyncio.Event()).wait(), DEADLINE)
        res = await tus.patch(url, index * 1024, b"x" * 1024, headers)
        assert res.code == 204
    response = await stream
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert offsets == sorted(offsets) and offsets[0] == 0 and offsets[-1] == 3 * 1024, offsets


@pytest.mark.gen_test(timeout=30)
async def test_sse_of_another_users_upload_is_404(
    tus: Tus, base_url: str, tus_config: Config, http_client: AsyncHTTPClient
) -> None:
    url = await tus.create_url(10, headers=bearer(tus_config, "alice"))
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await http_client.fetch(
            f"{base_url}/index-status/{upload_id_of(url)}",
            headers={**bearer(tus_config, "bob"), "Accept": "text/event-stream"},
        )
    assert refused.value.code == 404


@pytest.mark.gen_test(timeout=30)
async def test_sse_ends_with_terminated_when_the_upload_is_deleted(
    tus: Tus, base_url: str, tus_config: Config, http_client: AsyncHTTPClient
) -> None:
    headers = bearer(tus_config, "alice")
    url = await tus.create_url(1024, headers=headers)
    chunks: list[bytes] = []
    first = asyncio.Event()

    def on_chunk(chunk: bytes) -> None:
        chunks.append(chunk)
        first.set()

    stream = http_client.fetch(
        HTTPRequest(
            f"{base_url}/index-status/{upload_id_of(url)}",
            headers={**headers, "Accept": "text/event-stream"},
            streaming_callback=on_chunk,
            request_timeout=DEADLINE,
        )
    )
    await asyncio.wait_for(first.wait(), DEADLINE)
    assert (await tus.delete(url, headers)).code == 204
    assert (await stream).code == 200
    text = b"".join(chunks).decode()
    assert text.startswith("event: status\n") and "event: terminated\n" in text, text


@pytest.mark.gen_test(timeout=30)
async def test_sockets_close_with_1001_when_the_hub_closes(
    base_url: str, tus_config: Config, ctx: AppContext
) -> None:
    ws = await connect(base_url, bearer(tus_config, "alice"))
    await ready(ws)
    await ctx.live.aclose()
    assert await receive(ws) is None
    assert ws.close_code == 1001, (ws.close_code, ws.close_reason)
    ws.close()


@pytest.mark.gen_test(timeout=30)
async def test_plain_get_of_events_is_a_json_400(base_url: str, http_client: AsyncHTTPClient) -> None:
    res = await http_client.fetch(f"{base_url}/events", raise_error=False)
    assert res.code == 400
    assert "WebSocket" in json.loads(res.body)["error"]["message"]
