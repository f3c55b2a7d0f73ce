"""``checksum`` in the status document (issue 12.7): the whole upload's digest
the server computed from checksummed PATCHes, ``"<algorithm>:<hex>"``, or null
when it is not known (see :mod:`tusd_py.core.checksum`)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import zlib

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.http.conftest import upload_id_of
from tests.restapi import get_json
from tests.tusclient import Tus
from tusd_py.core.checksum import FileDigests
from tusd_py.ops.context import AppContext


def upload_checksum(algorithm: str, data: bytes) -> str:
    if algorithm == "crc32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    else:
        digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(digest).decode()}"


def hex_of(algorithm: str, data: bytes) -> str:
    if algorithm == "crc32":
        return f"crc32:{zlib.crc32(data):08x}"
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


async def status_checksum(client: AsyncHTTPClient, base_url: str, url: str) -> object:
    code, status = await get_json(client, f"{base_url}/index-status/{upload_id_of(url)}")
    assert code == 200, status
    return status["checksum"]


async def send(tus: Tus, url: str, data: bytes, cuts: list[int], algorithms: list[str | None]) -> None:
    offset = 0
    for end, algorithm in zip([*cuts, len(data)], algorithms, strict=True):
        chunk = data[offset:end]
        headers = {"Upload-Checksum": upload_checksum(algorithm, chunk)} if algorithm else {}
        res = await tus.patch(url, offset, chunk, headers)
        assert res.code == 204, res.body
        offset = end


@pytest.mark.gen_test
@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5", "crc32"])
async def test_one_checksummed_patch_of_the_whole_file(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, algorithm: str
) -> None:
    data = secrets.token_bytes(150_000)
    url = await tus.create_url(len(data))
    assert await status_checksum(http_client, base_url, url) is None  # nothing known yet
    await send(tus, url, data, [], [algorithm])
    assert await status_checksum(http_client, base_url, url) == hex_of(algorithm, data)


@pytest.mark.gen_test
async def test_every_patch_checksummed_gives_the_whole_file_digest(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    data = secrets.token_bytes(200_000)
    url = await tus.create_url(len(data))
    await send(tus, url, data, [70_000, 140_000], ["sha256"] * 3)
    assert await status_checksum(http_client, base_url, url) == hex_of("sha256", data)
    deferred = await tus.create_url(None, headers={"Upload-Defer-Length": "1"})
    first = data[:50_000]
    res = await tus.patch(deferred, 0, first, {"Upload-Checksum": upload_checksum("sha1", first)})
    assert res.code == 204
    rest = data[50_000:]
    headers = {"Upload-Checksum": upload_checksum("sha1", rest), "Upload-Length": str(len(data))}
    assert (await tus.patch(deferred, 50_000, rest, headers)).code == 204
    assert await status_checksum(http_client, base_url, deferred) == hex_of("sha1", data)


@pytest.mark.gen_test
async def test_a_rejected_chunk_does_not_spoil_the_digest(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    data = secrets.token_bytes(100_000)
    url = await tus.create_url(len(data))
    await send(tus, url, data[:40_000], [], ["sha256"])
    bad = {"Upload-Checksum": upload_checksum("sha256", b"something else")}
    assert (await tus.patch(url, 40_000, data[40_000:], bad)).code == 460
    good = {"Upload-Checksum": upload_checksum("sha256", data[40_000:])}
    assert (await tus.patch(url, 40_000, data[40_000:], good)).code == 204
    assert await status_checksum(http_client, base_url, url) == hex_of("sha256", data)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "algorithms",
    [["sha256", None], [None, "sha256"], ["sha256", "sha1"]],
    ids=["unchecked-tail", "unchecked-head", "mixed"],
)
async def test_unknown_when_not_every_patch_carried_one_algorithm(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, algorithms: list[str | None]
) -> None:
    data = secrets.token_bytes(100_000)
    url = await tus.create_url(len(data))
    await send(tus, url, data, [30_000], algorithms)
    assert await status_checksum(http_client, base_url, url) is None


@pytest.mark.gen_test
async def test_unknown_after_a_resume_the_process_did_not_see(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, ctx: AppContext
) -> None:
    """Another instance (or a restart) took the first chunk: no running hash here."""
    data = secrets.token_bytes(100_000)
    url = await tus.create_url(len(data))
    await send(tus, url, data[:30_000], [], ["sha256"])
    ctx.service.digests = FileDigests()  # what another process would hold
    res = await tus.patch(
        url, 30_000, data[30_000:], {"Upload-Checksum": upload_checksum("sha256", data[30_000:])}
    )
    assert res.code == 204
    assert await status_checksum(http_client, base_url, url) is None
