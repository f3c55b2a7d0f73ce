"""Checksum extension (TUS-CHECKLIST §1.6 lines 56–60; 61 in test_options,
the cut checksummed body of line 60 in test_patch_interrupted)."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Awaitable, Callable

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import PATCH_TYPE, TUS, Tus


def digest(algorithm: str, data: bytes) -> str:
    if algorithm == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    else:
        raw = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(raw).decode()}"


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256", "sha512", "crc32"])
@pytest.mark.gen_test
async def test_line57_matching_checksum_is_stored(tus: Tus, stored: Stored, algorithm: str) -> None:
    url = await tus.create_url(11)
    await tus.patch(url, 0, b"hello ")
    res = await tus.patch(url, 6, b"world", headers={"Upload-Checksum": digest(algorithm, b"world")})
    assert res.code == 204
    assert res.headers["Upload-Offset"] == "11"
    assert stored.content(upload_id_of(url)) == b"hello world"
    assert stored.staged() == []


@pytest.mark.gen_test
async def test_line57_checksummed_body_over_several_reads(tus: Tus, stored: Stored) -> None:
    data = bytes(range(256)) * 600  # 150 KiB > the 64 KiB read size of the tests
    url = await tus.create_url(len(data))
    res = await tus.patch(url, 0, data, headers={"Upload-Checksum": digest("sha256", data)})
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert stored.content(upload_id_of(url)) == data


@pytest.mark.parametrize("algorithm", ["sha1", "md5", "sha256", "sha512", "crc32"])
@pytest.mark.gen_test
async def test_line58_mismatch_is_460_and_chunk_discarded(tus: Tus, stored: Stored, algorithm: str) -> None:
    url = await tus.create_url(11)
    await tus.patch(url, 0, b"hello ")
    res = await tus.patch(url, 6, b"world", headers={"Upload-Checksum": digest(algorithm, b"w0rld")})
    assert res.code == 460
    assert res.reason == "Checksum Mismatch"
    assert json.loads(res.body)["error"]["code"] == "ERR_CHECKSUM_MISMATCH"
    assert (await tus.head(url)).headers["Upload-Offset"] == "6"
    assert stored.content(upload_id_of(url)) == b"hello "
    assert stored.staged() == []
    res = await tus.patch(url, 6, b"world", headers={"Upload-Checksum": digest(algorithm, b"world")})
    assert res.code == 204


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("sha384 " + base64.b64encode(b"x" * 48).decode(), "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM"),
        ("sha512 " + base64.b64encode(b"x" * 32).decode(), "ERR_INVALID_CHECKSUM"),  # a sha256-sized digest
        ("SHA1 " + base64.b64encode(b"x" * 20).decode(), "ERR_UNSUPPORTED_CHECKSUM_ALGORITHM"),
        ("sha1", "ERR_INVALID_CHECKSUM"),  # no space
        ("sha1 !!!!", "ERR_INVALID_CHECKSUM"),  # bad base64
        ("sha1 " + base64.b64encode(b"short").decode(), "ERR_INVALID_CHECKSUM"),  # wrong digest size
        ("sha1  " + base64.b64encode(b"x" * 20).decode(), "ERR_INVALID_CHECKSUM"),  # two spaces
        ("sha1 " + base64.b64encode(b"x" * 20).decode() + " extra", "ERR_INVALID_CHECKSUM"),
        ("", "ERR_INVALID_CHECKSUM"),
    ],
)
@pytest.mark.gen_test
async def test_line59_unsupported_or_malformed_is_400(
    tus: Tus, stored: Stored, value: str, code: str
) -> None:
    url = await tus.create_url(5)
    res = await tus.patch(url, 0, b"hello", headers={"Upload-Checksum": value})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == code
    assert (await tus.head(url)).headers["Upload-Offset"] == "0"
    assert stored.content(upload_id_of(url)) == b""
    assert stored.staged() == []


@pytest.mark.gen_test
async def test_line60_checksummed_body_beyond_length_is_413_and_discarded(tus: Tus, stored: Stored) -> None:
    url = await tus.create_url(3)
    res = await tus.patch(url, 0, b"hello", headers={"Upload-Checksum": digest("sha1", b"hello")})
    assert res.code == 413
    assert (await tus.head(url)).headers["Upload-Offset"] == "0"
    assert stored.staged() == []


@pytest.mark.gen_test
async def test_line60_chunked_checksummed_body_beyond_length_keeps_nothing(
    http_client: AsyncHTTPClient, tus: Tus, stored: Stored
) -> None:
    """Unlike a plain chunked body (whose fitting bytes are kept), a checksummed
    one cannot be verified once cut short, so none of it is stored."""
    url = await tus.create_url(5)

    async def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
        await write(b"abc")
        await write(b"defg")

    res = await http_client.fetch(
        url,
        method="PATCH",
        headers={**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Upload-Checksum": digest("sha1", b"abcdefg")},
        body_producer=producer,
        raise_error=False,
    )
    assert res.code == 413
    assert (await tus.head(url)).headers["Upload-Offset"] == "0"
    assert stored.content(upload_id_of(url)) == b""
    assert stored.staged() == []
