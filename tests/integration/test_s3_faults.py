"""S3 relay under faults, with an owned TCP proxy in front of moto.

moto keeps its buckets in memory, so killing the moto process would also
delete the multipart upload — which a real S3 outage never does. The S3
*endpoint* tusd-py talks to is therefore the proxy's port: stopping the proxy
refuses every connection on that port (S3 down), starting it again on the
same port brings S3 back with its state intact.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.integration import s3_support as s3t
from tests.integration.tcp_proxy import TcpProxy
from tests.tusclient import Tus
from tusd_py.core.service import FINISH_GRACE
from tusd_py.ops.context import AppContext

MIB = s3t.MIB


@pytest.fixture
def proxy_rate() -> float | None:
    return None


@pytest.fixture
def proxy(io_loop: tornado.ioloop.IOLoop, s3_endpoint: str, proxy_rate: float | None) -> Iterator[TcpProxy]:
    upstream = int(s3_endpoint.rsplit(":", 1)[1])
    p = TcpProxy(upstream, rate=proxy_rate)
    io_loop.run_sync(p.start)
    yield p
    io_loop.run_sync(p.stop)


@pytest.fixture
def config_overrides(proxy: TcpProxy, bucket: str) -> dict[str, Any]:
    return s3t.overrides(proxy.url, bucket, spool_parts=2, max_attempts=2, timeout=3.0)


async def _patch_until(tus: Tus, url: str, data: bytes, offset: int, stop_on: int, tries: int = 40) -> Any:
    """PATCH 1 MiB pieces until a response has status ``stop_on``; returns it."""
    for _ in range(tries):
        res = await tus.patch(url, offset, data[offset : offset + MIB])
        if res.code == stop_on:
            return res
        assert res.code == 204, (res.code, res.body)
        offset = int(res.headers["Upload-Offset"])
    raise AssertionError(f"no {stop_on} after {tries} PATCHes")


async def _offset(tus: Tus, url: str) -> int:
    head = await tus.head(url)
    assert head.code == 200, head.code
    return int(head.headers["Upload-Offset"])


async def _readiness(tus: Tus, base_url: str) -> tuple[int, dict[str, str]]:
    """``(status, checks)`` of one GET /readyz."""
    res = await tus.get(base_url + "/readyz")
    return res.code, json.loads(res.body)["checks"]


async def _ready_within(tus: Tus, base_url: str, timeout: float) -> dict[str, str]:
    """Poll /readyz until it answers 200 (bounded); returns its checks."""
    deadline = time.monotonic() + timeout
    while True:
        code, checks = await _readiness(tus, base_url)
        if code == 200:
            return checks
        assert time.monotonic() < deadline, f"/readyz still {code}: {checks}"
        await asyncio.sleep(0.1)


@pytest.mark.gen_test(timeout=60)
async def test_readyz_follows_the_s3_endpoint(
    http_client: AsyncHTTPClient, base_url: str, proxy: TcpProxy, bucket: str
) -> None:
    """/readyz is 200 while the configured S3 endpoint answers, 503 naming the
    problem in ``storage.s3`` while it is down (the other checks stay "ok"),
    and 200 again once it is back, with no restart of the server."""
    tus = Tus(http_client, base_url)
    code, checks = await _readiness(tus, base_url)
    assert code == 200 and checks["storage.s3"] == "ok" and checks["state"] == "ok", checks

    await proxy.stop()  # S3 endpoint down: connections refused
    code, checks = await _readiness(tus, base_url)
    assert code == 503, checks
    problem = checks["storage.s3"]
    assert "unreachable" in problem and bucket in problem and "HeadBucket" in problem, problem
    assert all(v == "ok" for name, v in checks.items() if name != "storage.s3"), checks

    await proxy.start()  # back on the same port
    checks = await _ready_within(tus, base_url, timeout=15)
    assert set(checks.values()) == {"ok"}, checks


@pytest.mark.gen_test(timeout=180)
async def test_s3_down_gives_503_and_loses_nothing_then_completes(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    proxy: TcpProxy,
    s3_endpoint: str,
    bucket: str,
) -> None:
    data = s3t.pattern(31 * MIB + 99, seed=21)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    res = await tus.patch(url, 0, data[: 6 * MIB])
    assert res.code == 204

    ready = await tus.get(base_url + "/readyz")
    assert ready.code == 200 and json.loads(ready.body)["checks"]["storage.s3"] == "ok"

    await proxy.stop()  # S3 endpoint down: connections refused
    ready = await tus.get(base_url + "/readyz")
    assert ready.code == 503 and "unreachable" in json.loads(ready.body)["checks"]["storage.s3"]
    res = await _patch_until(tus, url, data, 6 * MIB, stop_on=503)
    body = json.loads(res.body)
    assert body["error"]["code"] == "ERR_STORAGE_UNAVAILABLE"
    assert "unreachable" in body["error"]["message"] and bucket in body["error"]["message"]
    assert int(res.headers["Retry-After"]) >= 1
    held = await _offset(tus, url)
    assert 6 * MIB < held < len(data)
    # The spool stayed bounded (2 sealed parts + the one being filled) and still
    # holds everything past what S3 confirmed.
    spool = ctx.config.data_dir / "s3spool" / upload_id
    on_disk = sum(f.stat().st_size for f in spool.iterdir())
    assert on_disk <= 3 * s3t.PART
    parts = await ctx.composer.state.list_parts(upload_id)
    assert sum(p.size for p in parts) + on_disk == held
    again = await tus.patch(url, held, data[held : held + MIB])
    assert again.code == 503 and "Retry-After" in again.headers

    await proxy.start()  # S3 back on the same port
    offset = await _offset(tus, url)
    assert offset == held
    for _ in range(200):
        if offset == len(data):
            break
        res = await tus.patch(url, offset, data[offset : offset + 4 * MIB])
        if res.code == 503:  # a pooled connection from before the outage; retry like a client
            await asyncio.sleep(0.2)
            offset = await _offset(tus, url)
            continue
        assert res.code == 204, (res.code, res.body)
        offset = int(res.headers["Upload-Offset"])
    assert offset == len(data)
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []


@pytest.mark.gen_test(timeout=180)
async def test_s3_down_at_completion_then_head_completes(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    proxy: TcpProxy,
    s3_endpoint: str,
    bucket: str,
) -> None:
    data = s3t.pattern(13 * MIB + 1, seed=22)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    res = await tus.patch(url, 0, data[: 12 * MIB])
    assert res.code == 204
    await proxy.stop()
    res = await tus.patch(url, 12 * MIB, data[12 * MIB :])
    assert res.code == 503 and "Retry-After" in res.headers
    head = await tus.head(url)
    # Every byte is held durably (spool + parts), only the completion is pending:
    # within the grace period HEAD says so; after it, HEAD retries the completion.
    assert (head.code == 200 and head.headers["Upload-Offset"] == str(len(data))) or head.code == 503
    # Past the grace period a HEAD retries the completion, which fails while S3 is down.
    ctx.service.clock = lambda: time.time() + 2 * FINISH_GRACE
    head = await tus.head(url)
    assert head.code == 503 and "Retry-After" in head.headers
    await proxy.start()
    for _ in range(50):
        head = await tus.head(url)
        if head.code == 200:
            break
        await asyncio.sleep(0.2)
    assert head.code == 200 and head.headers["Upload-Offset"] == str(len(data))
    info = await ctx.composer.state.get(upload_id)
    assert info is not None and info.is_complete
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data


@pytest.mark.parametrize("proxy_rate", [8 * MIB])
@pytest.mark.gen_test(timeout=180)
async def test_spool_stays_bounded_when_s3_is_slower_than_the_client(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    proxy: TcpProxy,
    s3_endpoint: str,
    bucket: str,
    _unused_port: Any,
) -> None:
    # Linux autotunes a loopback receive buffer up to tcp_rmem's maximum (32 MiB
    # here), which could hold most of the body outside the spool and make "the
    # client was held back" unmeasurable. A fixed SO_RCVBUF on the listening
    # socket (accepted sockets inherit it; the kernel doubles it) keeps the bytes
    # in flight between the client and the spool within the slack asserted below:
    # client send buffer (tcp_wmem max, 4 MiB) + 2 MiB + the splice pipe and one read.
    _unused_port[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MIB)
    data = s3t.pattern(40 * MIB, seed=23)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    spool_dir = ctx.config.data_dir / "s3spool" / upload_id
    bound = (2 + 1) * s3t.PART  # spool_parts sealed parts + the part being filled
    sampled: list[int] = []
    pipelines: list[Any] = []
    forwarded_when_sent: list[int] = []

    async def sample() -> None:
        while True:
            if spool_dir.is_dir():
                sampled.append(sum(f.stat().st_size for f in spool_dir.iterdir() if f.is_file()))
            await asyncio.sleep(0.01)

    async def producer(write: Any) -> None:
        for start in range(0, len(data), MIB):
            await write(data[start : start + MIB])
            live = ctx.composer.storage("s3").pipeline_of(upload_id)  # type: ignore[attr-defined]
            if live is not None and not pipelines:
                pipelines.append(live)
        forwarded_when_sent.append(proxy.forwarded)

    sampler = asyncio.ensure_future(sample())
    try:
        res = await http_client.fetch(
            url,
            method="PATCH",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
                "Content-Length": str(len(data)),
            },
            body_producer=producer,
            raise_error=False,
            request_timeout=120,
        )
    finally:
        sampler.cancel()
    assert res.code == 204, res.body
    spool = pipelines[0].spool
    print(
        f"peak spool {spool.peak_bytes} sampled max {max(sampled)} waits {spool.waits} "
        f"forwarded when the client finished sending {forwarded_when_sent[0]} of {len(data)}"
    )
    assert spool.peak_bytes <= bound and max(sampled) <= bound
    assert spool.waits >= 1  # the writer had to wait for S3: the client was held back
    # The client could not finish sending before S3 had received most of the
    # bytes: what was still missing fits in the spool bound plus socket buffers.
    assert forwarded_when_sent[0] >= len(data) - bound - 12 * MIB
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data


@pytest.mark.gen_test(timeout=60)
async def test_s3_not_answering_gives_503_within_its_timeout_then_recovers(
    http_client: AsyncHTTPClient, base_url: str, proxy: TcpProxy, s3_endpoint: str, bucket: str
) -> None:
    """An endpoint that accepts connections and never answers (not one that
    refuses them): creating an S3-routed upload gets 503 with Retry-After after
    about ``[s3] timeout`` (3 s here), not after botocore's retries of read
    timeouts (max_attempts x timeout + backoff); then works once S3 answers."""
    tus = Tus(http_client, base_url)
    length = s3t.THRESHOLD + MIB
    proxy.freeze()
    started = time.monotonic()
    res = await tus.create(length)
    elapsed = time.monotonic() - started
    assert res.code == 503, (res.code, res.body)
    assert json.loads(res.body)["error"]["code"] == "ERR_STORAGE_UNAVAILABLE"
    assert int(res.headers["Retry-After"]) >= 1
    assert elapsed < 3.0 + 2.0, f"503 after {elapsed:.1f} s"
    proxy.thaw()
    deadline = time.monotonic() + 30
    while True:  # pooled connections from the frozen time may fail once more
        res = await tus.create(length)
        if res.code == 201 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert res.code == 201, (res.code, res.body)
