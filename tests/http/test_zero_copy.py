"""Zero-copy appends (:mod:`tusd_py.zerocopy`) over real sockets.

Whether a body took the splice path is read from the ``ZeroCopyAppend``
debug event (bytes spliced). Synchronisation is by polling the server's state
with deadlines, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
import tornado.testing
from tornado.httpclient import AsyncHTTPClient

from handlers.zerocopy import HEAD_BYTES
from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import RawConnection, request_head
from tests.http.test_patch_interrupted import offset_reaches, start_patch, streams_open
from tests.tusclient import PATCH_TYPE, TUS, Tus
from tusd_py.cli import server
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

MIB = 1 << 20


@pytest.fixture
def spliced(caplog: pytest.LogCaptureFixture) -> Iterator[list[int]]:
    """Bytes spliced per request body, as the server reported them."""
    caplog.set_level(logging.DEBUG, logger="tusd_py.zerocopy")
    found: list[int] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "event", None) == "ZeroCopyAppend":
                found.append(int(getattr(record, "spliced", 0)))

    handler = Collect()
    logger = logging.getLogger("tusd_py.zerocopy")
    logger.addHandler(handler)
    yield found
    logger.removeHandler(handler)


def body(size: int) -> bytes:
    return os.urandom(size)


async def one_spliced_patch_keeps_alive(tus: Tus, connect: Connect, spliced: list[int], data: bytes) -> str:
    """``data`` in one PATCH of a new upload: spliced but for its head,
    answered 204 on a connection that then serves a HEAD. Returns its URL."""
    url = await tus.create_url(len(data))
    path = "/files/" + upload_id_of(url)
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": str(len(data))}
    await conn.send_request("PATCH", path, headers, data)
    res = await conn.read_response()
    assert res.status == 204, res
    assert res.header("Upload-Offset") == str(len(data))
    assert res.header("Connection") != "close"
    assert len(spliced) == 1 and len(data) - HEAD_BYTES - (64 << 10) <= spliced[0] <= len(data) - HEAD_BYTES
    await conn.send_request("HEAD", path, TUS)
    head = await conn.read_response("HEAD")
    assert head.status == 200 and head.header("Upload-Offset") == str(len(data))
    return url


@pytest.mark.gen_test(timeout=60)
async def test_large_patch_is_spliced_identical_and_keeps_alive(
    tus: Tus, stored: Stored, connect: Connect, spliced: list[int]
) -> None:
    data = body(32 * MIB)
    url = await one_spliced_patch_keeps_alive(tus, connect, spliced, data)
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test(timeout=60)
async def test_a_body_at_a_later_offset_is_spliced_but_for_what_came_with_its_head(
    tus: Tus, stored: Stored, connect: Connect, spliced: list[int]
) -> None:
    """Past the upload's first bytes nothing needs inspecting, and the
    connection stops Tornado reading ahead once the head is parsed: only
    what arrived in the head's own read (one ``read_chunk_size``, 64 KiB) is
    copied, however long the handler takes to lock the upload."""
    first, rest = body(MIB), body(16 * MIB)
    url = await tus.create_url(len(first) + len(rest))
    path = "/files/" + upload_id_of(url)
    conn = await connect()
    for offset, data in ((0, first), (len(first), rest)):
        headers = {**TUS, **PATCH_TYPE, "Upload-Offset": str(offset), "Content-Length": str(len(data))}
        await conn.send(request_head("PATCH", path, headers) + data)
        res = await conn.read_response()
        assert res.status == 204 and res.header("Upload-Offset") == str(offset + len(data)), res
    assert len(spliced) == 2 and len(rest) - (64 << 10) <= spliced[1] <= len(rest)
    assert stored.content(upload_id_of(url)) == first + rest


@pytest.mark.gen_test(timeout=60)
async def test_a_body_that_waits_for_the_lock_stays_in_the_kernel(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect, spliced: list[int]
) -> None:
    """While a PATCH waits for the upload's lock, the idle IOStream does not
    read its body into Python (to be copied later): it is spliced whole."""
    data = body(3 * MIB)  # the kernel takes it all unread (~4 MiB on loopback)
    url = await tus.create_url(MIB + len(data))
    assert (await tus.patch(url, 0, body(MIB))).code == 204
    waiting = asyncio.Event()
    holder = ctx.composer.locker.new_lock(upload_id_of(url))
    await holder.acquire(1.0, waiting.set)
    conn = await connect()
    try:
        headers = {**TUS, **PATCH_TYPE, "Upload-Offset": str(MIB), "Content-Length": str(len(data))}
        await conn.send(request_head("PATCH", "/files/" + upload_id_of(url), headers))
        await asyncio.wait_for(waiting.wait(), 10)  # the PATCH asked the holder to let go
        await conn.send(data)
    finally:
        await holder.release()
    res = await conn.read_response()
    assert res.status == 204 and res.header("Upload-Offset") == str(MIB + len(data)), res
    assert spliced and spliced[-1] == len(data)
    assert stored.content(upload_id_of(url))[MIB:] == data


@pytest.mark.gen_test(timeout=60)
async def test_a_body_sent_while_the_previous_request_waits_is_read_one_piece_ahead(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect, spliced: list[int]
) -> None:
    """A pipelined PATCH that arrives while the request before it waits (a
    DELETE for a locked upload) is read ahead one head-sized piece, not up to
    the header cap (Tornado kept a finished head read's max_bytes as the
    target of idle reads: 2 MiB copied per body)."""
    other = await tus.create_url(10)
    data = body(3 * MIB)
    url = await tus.create_url(len(data))
    waiting = asyncio.Event()
    holder = ctx.composer.locker.new_lock(upload_id_of(other))
    await holder.acquire(1.0, waiting.set)
    conn = await connect()
    try:
        await conn.send(request_head("DELETE", "/files/" + upload_id_of(other), TUS))
        await asyncio.wait_for(waiting.wait(), 10)  # the DELETE waits for the lock
        headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": str(len(data))}
        await conn.send(request_head("PATCH", "/files/" + upload_id_of(url), headers) + data)
    finally:
        await holder.release()
    assert (await conn.read_response()).status == 204
    res = await conn.read_response()
    assert res.status == 204 and res.header("Upload-Offset") == str(len(data)), res
    assert spliced and len(data) - HEAD_BYTES - (64 << 10) <= spliced[-1]
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test(timeout=60)
async def test_pipelined_request_after_a_spliced_body_is_answered(
    tus: Tus, stored: Stored, connect: Connect, spliced: list[int]
) -> None:
    """The splice never reads past Content-Length: the next request's bytes,
    sent in the same write, stay for Tornado."""
    data = body(3 * MIB)
    url = await tus.create_url(len(data))
    path = "/files/" + upload_id_of(url)
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": str(len(data))}
    await conn.send(request_head("PATCH", path, headers) + data + request_head("HEAD", path, TUS))
    res = await conn.read_response()
    assert res.status == 204 and res.header("Upload-Offset") == str(len(data))
    head = await conn.read_response("HEAD")
    assert head.status == 200 and head.header("Upload-Offset") == str(len(data))
    assert spliced and spliced[0] > 0
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test(timeout=60)
async def test_expect_continue_body_is_spliced(
    tus: Tus, stored: Stored, connect: Connect, spliced: list[int]
) -> None:
    data = body(2 * MIB)
    url = await tus.create_url(len(data))
    conn = await connect()
    headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": str(len(data))}
    await conn.send_request("PATCH", "/files/" + upload_id_of(url), {**headers, "Expect": "100-continue"})
    interim = await conn.read_response()
    assert interim.status == 100
    await conn.send(data)
    res = await conn.read_response()
    assert res.status == 204 and res.header("Upload-Offset") == str(len(data))
    assert spliced and spliced[0] > 0
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test(timeout=60)
async def test_creation_with_large_body_is_spliced(tus: Tus, stored: Stored, spliced: list[int]) -> None:
    data = body(2 * MIB)
    res = await tus.create(len(data), body=data)
    assert res.code == 201 and res.headers["Upload-Offset"] == str(len(data))
    assert spliced and spliced[0] > 0
    assert stored.content(upload_id_of(res.headers["Location"])) == data


async def cut_spliced_body(
    tus: Tus, ctx: AppContext, connect: Connect, spliced: list[int], data: bytes, sent: int
) -> str:
    """A new upload of ``data`` whose one PATCH is cut (FIN) after ``sent``
    bytes, some of them spliced: its offset is then exactly ``sent``. Returns its URL."""
    url = await tus.create_url(len(data))
    conn = await start_patch(connect, url, 0, len(data), data[:sent])
    await offset_reaches(tus, url, sent)
    conn.close_fin()
    await streams_open(ctx, 0)
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == str(sent)
    assert spliced and spliced[0] > 0
    return url


@pytest.mark.gen_test(timeout=60)
async def test_body_cut_midway_keeps_exactly_the_bytes_received(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect, spliced: list[int]
) -> None:
    data = body(8 * MIB)
    sent = 3 * MIB + 12345
    url = await cut_spliced_body(tus, ctx, connect, spliced, data, sent)
    assert stored.content(upload_id_of(url)) == data[:sent]
    res = await tus.patch(url, sent, data[sent:])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test(timeout=60)
async def test_first_bytes_are_inspected_before_splicing(
    tus: Tus, data_dir: Path, spliced: list[int]
) -> None:
    elf = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, 0x3E) + b"\0" * 40 + body(2 * MIB)
    url = await tus.create_url(len(elf))
    res = await tus.patch(url, 0, elf)
    assert res.code == 415, res.body
    assert json.loads(res.body)["error"]["code"] == "ERR_FILE_TYPE_NOT_ALLOWED"
    assert spliced == []
    assert (await tus.head(url)).code == 404
    assert list((data_dir / "uploads").iterdir()) == []


@pytest.mark.gen_test(timeout=60)
async def test_body_longer_than_the_upload_is_refused_before_splicing(
    tus: Tus, stored: Stored, spliced: list[int]
) -> None:
    url = await tus.create_url(1 * MIB)
    res = await tus.patch(url, 0, body(2 * MIB))
    assert res.code == 413, res.body
    assert spliced == [] and stored.content(upload_id_of(url)) == b""


@pytest.mark.gen_test(timeout=60)
async def test_checksummed_body_is_copied(tus: Tus, stored: Stored, spliced: list[int]) -> None:
    data = body(1 * MIB)
    url = await tus.create_url(len(data))
    digest = base64.b64encode(hashlib.sha1(data).digest()).decode()
    res = await tus.patch(url, 0, data, headers={"Upload-Checksum": f"sha1 {digest}"})
    assert res.code == 204, res.body
    assert spliced == [] and stored.content(upload_id_of(url)) == data


@pytest.mark.gen_test(timeout=60)
async def test_small_body_is_copied(tus: Tus, stored: Stored, spliced: list[int]) -> None:
    data = body(100_000)
    url = await tus.create_url(len(data))
    res = await tus.patch(url, 0, data)
    assert res.code == 204
    assert spliced == [] and stored.content(upload_id_of(url)) == data


@pytest.mark.parametrize("config_overrides", [{"server.zero_copy": False}])
@pytest.mark.gen_test(timeout=60)
async def test_zero_copy_off_copies(tus: Tus, stored: Stored, spliced: list[int]) -> None:
    data = body(4 * MIB)
    url = await tus.create_url(len(data))
    res = await tus.patch(url, 0, data)
    assert res.code == 204
    assert spliced == [] and stored.content(upload_id_of(url)) == data


@pytest.mark.parametrize("config_overrides", [{"server.release_idle": 0.2}])
@pytest.mark.gen_test(timeout=60)
async def test_release_request_cuts_an_idle_spliced_writer(
    tus: Tus, stored: Stored, ctx: AppContext, connect: Connect, spliced: list[int]
) -> None:
    data = body(4 * MIB)
    sent = 1 * MIB
    url = await tus.create_url(len(data))
    holder = await start_patch(connect, url, 0, len(data), data[:sent])
    await offset_reaches(tus, url, sent)
    res = await tus.patch(url, sent, data[sent:])  # asks the idle holder to release
    assert res.code == 204, res.body
    assert res.headers["Upload-Offset"] == str(len(data))
    answer = await holder.read_until_closed()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "ERR_UPLOAD_INTERRUPTED"
    assert spliced and spliced[0] > 0
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.parametrize("config_overrides", [{"server.network_timeout": 0.5}])
@pytest.mark.gen_test(timeout=60)
async def test_idle_spliced_body_times_out_and_keeps_bytes(
    tus: Tus, stored: Stored, connect: Connect, spliced: list[int]
) -> None:
    data = body(2 * MIB)
    sent = MIB + 7
    url = await tus.create_url(len(data))
    conn = await start_patch(connect, url, 0, len(data), data[:sent])
    answer = await conn.read_until_closed()
    assert answer.startswith(b"HTTP/1.1 500 "), answer[:200]
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == "ERR_READ_TIMEOUT"
    await offset_reaches(tus, url, sent)
    assert stored.content(upload_id_of(url)) == data[:sent]
    assert spliced and spliced[0] > 0


class TestShutdown:
    """SIGTERM drain (SPEC §9) of a spliced body: cut with 503 after
    ``drain_timeout``, its bytes saved before exit."""

    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.drain_timeout": 0.2}

    @pytest.fixture
    def ctx(self, io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
        context = io_loop.run_sync(lambda: server.build_context(tus_config))
        yield context  # closed by RunningServer.drain_and_close

    @pytest.mark.gen_test(timeout=60)
    async def test_drain_cuts_a_spliced_body_and_saves_bytes(
        self,
        ctx: AppContext,
        tus_config: Config,
        http_client: AsyncHTTPClient,
        stored: Stored,
        spliced: list[int],
    ) -> None:
        data = body(4 * MIB)
        sent = 2 * MIB + 1
        sock, port = tornado.testing.bind_unused_port("127.0.0.1")
        running = await server.start(ctx, [sock])
        tus = Tus(http_client, f"http://127.0.0.1:{port}")
        url = await tus.create_url(len(data))
        conn = await RawConnection.open(port)
        try:
            headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": str(len(data))}
            await conn.send_request("PATCH", "/files/" + upload_id_of(url), headers, data[:sent])
            await offset_reaches(tus, url, sent)
            await running.drain_and_close()
            answer = await conn.read_until_closed()
        finally:
            await conn.aclose()
        head, _, rest = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503 "), answer[:200]
        assert json.loads(rest)["error"]["code"] == "ERR_SERVER_SHUTDOWN"
        assert spliced and spliced[0] > 0
        assert stored.content(upload_id_of(url)) == data[:sent]
        reopened = await server.build_context(tus_config)
        try:
            info = await reopened.composer.state.get(upload_id_of(url))
            assert info is not None and info.offset == sent
        finally:
            await reopened.aclose()
