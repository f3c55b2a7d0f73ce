"""Refusals arrive (issue 14.4): a request refused before its body is read
delivers its status and JSON error to clients that send the whole body before
reading the response (Python ``http.client``, ``requests``, tuspy), instead
of a connection reset. The server reads and discards the body up to
``server.refusal_drain`` bytes (:mod:`handlers.httpconn`). ``requests`` and
tuspy (on ``requests``) happened to see the status before; their tests guard it.

Bodies are 20 MiB streamed from a generator (never held in memory).
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import tornado.ioloop
from tusclient import client as tus_client
from tusclient.exceptions import TusUploadFailed
from tusclient.uploader.uploader import Uploader

from tests.http.conftest import Stored, upload_id_of
from tests.http.fake_auth import HeaderAuthenticator, as_user, ctx  # noqa: F401  (the ctx fixture with test auth)
from tests.tusclient import PATCH_TYPE, TUS, Tus
from tusd_py.cli.server import build_context
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

ALICE = as_user("alice")
BODY = 20 << 20
_BLOCK = bytes(1 << 20)


def body_chunks(size: int) -> Iterator[bytes]:
    """``size`` zero bytes in blocks of at most 1 MiB."""
    while size > 0:
        block = _BLOCK[: min(size, len(_BLOCK))]
        size -= len(block)
        yield block


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def code(self) -> str:
        return str(json.loads(self.body)["error"]["code"])


def send_all(
    port: int, method: str, path: str, headers: Mapping[str, str], size: int, repeat: int = 1
) -> list[Answer]:
    """Blocking: ``repeat`` requests on one ``http.client`` connection, each
    sending its whole ``size``-byte body before reading the response."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    answers = []
    try:
        for _ in range(repeat):
            conn.request(
                method, path, body=body_chunks(size), headers={**headers, "Content-Length": str(size)}
            )
            resp = conn.getresponse()
            body = resp.read()
            answers.append(Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body))
    finally:
        conn.close()
    return answers


async def in_thread(port: int, method: str, path: str, headers: Mapping[str, str], size: int) -> Answer:
    loop = asyncio.get_running_loop()
    answers = await loop.run_in_executor(None, send_all, port, method, path, headers, size)
    return answers[0]


PATCH = {**TUS, **PATCH_TYPE}
PATCH_REFUSALS = [
    ("401 bad token", {**PATCH, **as_user("!x"), "Upload-Offset": "0"}, None, 401, "ERR_UNAUTHENTICATED"),
    ("401 no token", {**PATCH, "Upload-Offset": "0"}, None, 401, "ERR_UNAUTHENTICATED"),
    ("404 unknown id", {**PATCH, **ALICE, "Upload-Offset": "0"}, "f" * 32, 404, "ERR_UPLOAD_NOT_FOUND"),
    (
        "404 other user",
        {**PATCH, **as_user("mallory"), "Upload-Offset": "0"},
        None,
        404,
        "ERR_UPLOAD_NOT_FOUND",
    ),
    ("409 wrong offset", {**PATCH, **ALICE, "Upload-Offset": "7"}, None, 409, "ERR_MISMATCHED_OFFSET"),
    ("412 bad version", {**PATCH, **ALICE, "Upload-Offset": "0", "Tus-Resumable": "0.2.2"}, None, 412, None),
    (
        "415 content type",
        {**TUS, **ALICE, "Upload-Offset": "0", "Content-Type": "text/plain"},
        None,
        415,
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "headers", "path_id", "status", "code"), PATCH_REFUSALS, ids=[r[0] for r in PATCH_REFUSALS]
)
@pytest.mark.gen_test(timeout=60)
async def test_patch_refusal_arrives_to_http_client(
    tus: Tus,
    port: int,
    stored: Stored,
    name: str,
    headers: dict[str, str],
    path_id: str | None,
    status: int,
    code: str | None,
) -> None:
    url = await tus.create_url(2 * BODY, headers=ALICE)
    answer = await in_thread(port, "PATCH", "/files/" + (path_id or upload_id_of(url)), headers, BODY)
    assert answer.status == status
    assert answer.headers["content-type"].startswith("application/json")
    if code:
        assert answer.code() == code
    assert (await tus.head(url, headers=ALICE)).headers["Upload-Offset"] == "0"
    assert stored.content(upload_id_of(url)) == b""


@pytest.mark.gen_test(timeout=60)
async def test_patch_413_body_beyond_length_arrives(tus: Tus, port: int) -> None:
    url = await tus.create_url(5, headers=ALICE)
    answer = await in_thread(
        port, "PATCH", "/files/" + upload_id_of(url), {**PATCH, **ALICE, "Upload-Offset": "0"}, BODY
    )
    assert answer.status == 413
    assert answer.code() == "ERR_UPLOAD_SIZE_EXCEEDED"


@pytest.mark.gen_test(timeout=60)
async def test_patch_503_while_draining_arrives(tus: Tus, port: int, ctx: AppContext) -> None:  # noqa: F811
    url = await tus.create_url(BODY, headers=ALICE)
    ctx.lifecycle.draining = True
    try:
        answer = await in_thread(
            port, "PATCH", "/files/" + upload_id_of(url), {**PATCH, **ALICE, "Upload-Offset": "0"}, BODY
        )
    finally:
        ctx.lifecycle.draining = False
    assert answer.status == 503
    assert answer.code() == "ERR_SERVER_SHUTDOWN"
    assert answer.headers["retry-after"]


CREATE_REFUSALS = [
    ("401 bad token", {**PATCH, **as_user("!x"), "Upload-Length": str(BODY)}, 401, "ERR_UNAUTHENTICATED"),
    ("413 body beyond length", {**PATCH, **ALICE, "Upload-Length": "5"}, 413, "ERR_UPLOAD_SIZE_EXCEEDED"),
    (
        "415 content type",
        {**TUS, **ALICE, "Upload-Length": str(BODY), "Content-Type": "text/plain"},
        415,
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "headers", "status", "code"), CREATE_REFUSALS, ids=[r[0] for r in CREATE_REFUSALS]
)
@pytest.mark.gen_test(timeout=60)
async def test_creation_with_upload_refusal_arrives(
    port: int, stored: Stored, name: str, headers: dict[str, str], status: int, code: str | None
) -> None:
    answer = await in_thread(port, "POST", "/files/", headers, BODY)
    assert answer.status == status
    if code:
        assert answer.code() == code
    assert await stored.ids() == []


@pytest.mark.gen_test(timeout=60)
async def test_drained_connection_stays_usable(tus: Tus, port: int) -> None:
    """The drained body keeps the client's framing: the next request on the
    same connection is answered too."""
    url = await tus.create_url(5, headers=ALICE)
    loop = asyncio.get_running_loop()
    headers = {**PATCH, **ALICE, "Upload-Offset": "3"}
    answers = await loop.run_in_executor(
        None, send_all, port, "PATCH", "/files/" + upload_id_of(url), headers, 1 << 20, 2
    )
    assert [a.status for a in answers] == [409, 409]


@pytest.mark.gen_test(timeout=60)
async def test_refusal_arrives_to_requests(tus: Tus, port: int) -> None:
    url = await tus.create_url(2 * BODY, headers=ALICE)

    def send() -> requests.Response:
        return requests.patch(
            f"http://127.0.0.1:{port}/files/{upload_id_of(url)}",
            data=body_chunks(BODY),
            headers={**PATCH, **ALICE, "Upload-Offset": "9", "Content-Length": str(BODY)},
            timeout=30,
        )

    resp = await asyncio.get_running_loop().run_in_executor(None, send)
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "ERR_MISMATCHED_OFFSET"


def tuspy_patch_at_wrong_offset(url: str, headers: dict[str, str], size: int) -> TusUploadFailed:
    """Blocking: tuspy resumes ``url`` but PATCHes ``size`` bytes at offset 3
    (the server holds 0); returns the error tuspy raised."""
    client = tus_client.TusClient(url.rsplit("/", 1)[0] + "/", headers=headers)
    stream = io.BytesIO(bytes(size))
    uploader = Uploader(client=client, url=url, file_stream=stream, chunk_size=size, retries=0)
    uploader.offset = 3
    try:
        uploader.upload_chunk()
    except TusUploadFailed as exc:
        return exc
    raise AssertionError("tuspy's PATCH was not refused")


@pytest.mark.gen_test(timeout=60)
async def test_refusal_arrives_to_tuspy(tus: Tus) -> None:
    url = await tus.create_url(2 * BODY, headers=ALICE)
    error = await asyncio.get_running_loop().run_in_executor(
        None, tuspy_patch_at_wrong_offset, url, ALICE, BODY
    )
    assert error.status_code == 409, error
    assert json.loads(error.response_content or b"{}")["error"]["code"] == "ERR_MISMATCHED_OFFSET"


@pytest.mark.gen_test(timeout=60)
async def test_patch_403_on_a_final_upload_arrives(tus: Tus, port: int) -> None:
    partial = await tus.create_url(3, headers={**ALICE, "Upload-Concat": "partial"})
    await tus.patch(partial, 0, b"abc", headers=ALICE)
    res = await tus.request("POST", tus.collection, {**ALICE, "Upload-Concat": f"final;{partial}"})
    assert res.code == 201, res.body
    final = upload_id_of(res.headers["Location"])
    answer = await in_thread(port, "PATCH", "/files/" + final, {**PATCH, **ALICE, "Upload-Offset": "3"}, BODY)
    assert answer.status == 403
    assert answer.code() == "ERR_MODIFY_FINAL"


class TestLockedAndThrottled:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.lock_timeout": 0.3, "throttle.ip_requests_per_minute": 4}

    @pytest.mark.gen_test(timeout=60)
    async def test_patch_423_lock_timeout_arrives(self, tus: Tus, port: int, ctx: AppContext) -> None:  # noqa: F811
        url = await tus.create_url(2 * BODY, headers=ALICE)
        lock = ctx.composer.locker.new_lock(upload_id_of(url))
        await lock.acquire(1.0, lambda: None)
        try:
            answer = await in_thread(
                port, "PATCH", "/files/" + upload_id_of(url), {**PATCH, **ALICE, "Upload-Offset": "0"}, BODY
            )
        finally:
            await lock.release()
        assert answer.status == 423
        assert answer.code() == "ERR_LOCK_TIMEOUT"

    @pytest.mark.gen_test(timeout=60)
    async def test_patch_429_arrives(self, tus: Tus, port: int) -> None:
        url = await tus.create_url(2 * BODY, headers=ALICE)
        path = "/files/" + upload_id_of(url)
        for _ in range(5):  # bounded: the 5th request at the latest is over the limit of 4
            answer = await in_thread(port, "PATCH", path, {**PATCH, **ALICE, "Upload-Offset": "1"}, BODY)
            if answer.status == 429:
                break
            assert answer.status == 409
        assert answer.status == 429
        assert answer.code() == "ERR_RATE_LIMITED"
        assert answer.headers["retry-after"]


class TestExpired:
    """410 for an expired upload, with the service's clock moved by the test."""

    NOW = 1_800_000_000.0

    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.expiration": 60.0}

    @pytest.fixture
    def clock(self) -> list[float]:
        return [self.NOW]

    @pytest.fixture
    def ctx(
        self, io_loop: tornado.ioloop.IOLoop, tus_config: Config, clock: list[float]
    ) -> Iterator[AppContext]:
        context = io_loop.run_sync(
            lambda: build_context(tus_config, authenticator=HeaderAuthenticator(), clock=lambda: clock[0])
        )
        yield context
        io_loop.run_sync(lambda: context.lifecycle.join_tasks(10.0))
        io_loop.run_sync(context.aclose)

    @pytest.mark.gen_test(timeout=60)
    async def test_patch_410_on_an_expired_upload_arrives(
        self, tus: Tus, port: int, clock: list[float]
    ) -> None:
        url = await tus.create_url(2 * BODY, headers=ALICE)
        clock[0] += 61
        answer = await in_thread(
            port, "PATCH", "/files/" + upload_id_of(url), {**PATCH, **ALICE, "Upload-Offset": "0"}, BODY
        )
        assert answer.status == 410
        assert answer.code() == "ERR_UPLOAD_GONE"
