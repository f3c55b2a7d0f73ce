"""S3 relay against the real moto server: routing, pipelining, completion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.integration import s3_support as s3t
from tests.tusclient import Tus, metadata
from tusd_py.core import protocol
from tusd_py.ops.context import AppContext
from tusd_py.ops.reconcile import sweep_orphans

MIB = s3t.MIB


@pytest.fixture
def s3_extra() -> dict[str, Any]:
    """Extra ``[s3]`` settings; parametrize a test with ``s3_extra`` to change them."""
    return {}


@pytest.fixture
def config_overrides(s3_endpoint: str, bucket: str, s3_extra: dict[str, Any]) -> dict[str, Any]:
    return s3t.overrides(s3_endpoint, bucket, **s3_extra)


@pytest.mark.gen_test(timeout=120)
async def test_known_length_above_threshold_becomes_one_object(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    data = s3t.pattern(23 * MIB + 12345)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    info = await ctx.composer.state.get(upload_id)
    assert info is not None and info.storage == "s3"
    offset = 0
    for size in (7 * MIB, 9 * MIB, len(data) - 16 * MIB):
        res = await tus.patch(url, offset, data[offset : offset + size])
        assert res.code == 204, res.body
        offset += size
        assert int(res.headers["Upload-Offset"]) == offset
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == str(len(data))


async def _wait_parts(ctx: AppContext, upload_id: str, count: int, deadline: float = 60.0) -> int:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        parts = await ctx.composer.state.list_parts(upload_id)
        if len(parts) >= count:
            return len(parts)
        await asyncio.sleep(0.02)
    raise AssertionError(f"fewer than {count} parts recorded after {deadline}s")


@pytest.mark.gen_test(timeout=120)
async def test_parts_upload_while_the_client_is_still_sending(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    data = s3t.pattern(20 * MIB, seed=2)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    seen_mid_request: list[int] = []

    async def producer(write: Any) -> None:
        for start in range(0, len(data), MIB):
            if start == len(data) - MIB:
                # The body is not finished yet: parts must already be in S3.
                seen_mid_request.append(await _wait_parts(ctx, upload_id, 2))
            await write(data[start : start + MIB])

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
    assert res.code == 204, res.body
    assert seen_mid_request and seen_mid_request[0] >= 2
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data


@pytest.mark.gen_test(timeout=120)
async def test_deferred_length_starts_local_and_crosses_into_s3(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    data = s3t.pattern(26 * MIB + 7, seed=3)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(None)
    upload_id = url.rsplit("/", 1)[-1]
    res = await tus.patch(url, 0, data[: 8 * MIB])
    assert res.code == 204
    info = await ctx.composer.state.get(upload_id)
    assert info is not None and info.storage == "s3" and info.storage_meta["phase"] == "local"
    res = await tus.patch(url, 8 * MIB, data[8 * MIB : 19 * MIB])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(19 * MIB)
    info = await ctx.composer.state.get(upload_id)
    assert info is not None and info.storage_meta["phase"] == "s3"
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == str(19 * MIB)
    assert "Upload-Defer-Length" in head.headers
    res = await tus.patch(url, 19 * MIB, data[19 * MIB :], headers={"Upload-Length": str(len(data))})
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
    got = await tus.get(url)
    assert got.code == 302


@pytest.mark.gen_test(timeout=60)
async def test_small_deferred_upload_stays_local(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    data = s3t.pattern(3 * MIB, seed=4)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(None)
    res = await tus.patch(url, 0, data, headers={"Upload-Length": str(len(data))})
    assert res.code == 204
    got = await tus.get(url)
    assert got.code == 200 and got.body == data
    listed = s3t.client(s3_endpoint).list_objects_v2(Bucket=bucket)
    assert listed.get("KeyCount", 0) == 0
    small = await tus.create_url(1000)
    info = await ctx.composer.state.get(small.rsplit("/", 1)[-1])
    assert info is not None and info.storage == "disk"


@pytest.mark.gen_test(timeout=120)
async def test_many_one_mib_patches(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    data = s3t.pattern(17 * MIB + 4321, seed=5)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    offset = 0
    while offset < len(data):
        piece = data[offset : offset + MIB]
        res = await tus.patch(url, offset, piece)
        assert res.code == 204, res.body
        offset += len(piece)
        assert res.headers["Upload-Offset"] == str(offset)
        if offset == 8 * MIB:
            head = await tus.head(url)
            assert head.headers["Upload-Offset"] == str(offset)
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert await ctx.composer.state.list_parts(upload_id) == []
    assert not (ctx.config.data_dir / "s3spool" / upload_id).exists()


async def _partly_uploaded(tus: Tus, size: int, sent: int, seed: int) -> tuple[str, str]:
    data = s3t.pattern(size, seed=seed)
    url = await tus.create_url(size)
    res = await tus.patch(url, 0, data[:sent])
    assert res.code == 204
    return url, url.rsplit("/", 1)[-1]


@pytest.mark.gen_test(timeout=120)
async def test_delete_aborts_the_multipart_upload(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    tus = Tus(http_client, base_url)
    url, upload_id = await _partly_uploaded(tus, 20 * MIB, 13 * MIB, seed=6)
    await _wait_parts(ctx, upload_id, 2)
    assert len(s3t.multipart_uploads(s3_endpoint, bucket)) == 1
    res = await tus.delete(url)
    assert res.code == 204
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
    assert await ctx.composer.state.list_parts(upload_id) == []
    assert not (ctx.config.data_dir / "s3spool" / upload_id).exists()
    assert (await tus.head(url)).code == 404


@pytest.mark.gen_test(timeout=120)
async def test_expiry_aborts_the_multipart_upload(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    tus = Tus(http_client, base_url)
    url, upload_id = await _partly_uploaded(tus, 20 * MIB, 7 * MIB, seed=7)
    assert len(s3t.multipart_uploads(s3_endpoint, bucket)) == 1
    await ctx.composer.state.update(upload_id, {"expires_at": 1.0})
    assert await ctx.service.sweep_expired() == 1
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
    assert not (ctx.config.data_dir / "s3spool" / upload_id).exists()
    assert (await tus.head(url)).code == 410


async def _complete_upload(tus: Tus, data: bytes, **headers: str) -> str:
    url = await tus.create_url(len(data), headers=headers)
    res = await tus.patch(url, 0, data)
    assert res.code == 204, res.body
    return url


@pytest.mark.gen_test(timeout=120)
async def test_get_redirects_to_a_presigned_url(
    http_client: AsyncHTTPClient, base_url: str, s3_endpoint: str
) -> None:
    data = s3t.pattern(13 * MIB, seed=8)
    tus = Tus(http_client, base_url)
    url = await _complete_upload(tus, data, **{"Upload-Metadata": metadata(filename="big file.bin")})
    got = await tus.get(url)
    assert got.code == 302
    location = got.headers["Location"]
    assert location.startswith(s3_endpoint) and "Signature" in location
    fetched = await http_client.fetch(location, request_timeout=60)
    assert fetched.body == data
    # S3 answers with these headers (moto ignores the overrides, so check the URL asks for them).
    assert "response-content-disposition=attachment" in location
    assert "big%2520file.bin" in location or "big%20file.bin" in location


@pytest.mark.parametrize("s3_extra", [{"download": "proxy"}])
@pytest.mark.gen_test(timeout=120)
async def test_proxy_mode_streams_the_object(http_client: AsyncHTTPClient, base_url: str) -> None:
    data = s3t.pattern(13 * MIB + 5, seed=9)
    tus = Tus(http_client, base_url)
    url = await _complete_upload(tus, data)
    got = await tus.get(url)
    assert got.code == 200 and got.body == data
    ranged = await tus.get(url, headers={"Range": "bytes=6291456-6291555"})
    assert ranged.code == 206 and ranged.body == data[6291456:6291556]


@pytest.mark.gen_test(timeout=120)
async def test_concatenation_copies_s3_partials_and_streams_small_ones(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    tus = Tus(http_client, base_url)
    big = s3t.pattern(13 * MIB + 3, seed=10)
    small = s3t.pattern(2 * MIB + 1, seed=11)
    mid = s3t.pattern(6 * MIB, seed=12)
    urls = [await _complete_upload(tus, d, **{"Upload-Concat": "partial"}) for d in (big, small, mid)]
    a, b, c = (u.rsplit("/", 1)[-1] for u in urls)
    assert [(await ctx.composer.state.get(i)).storage for i in (a, b, c)] == ["s3", "disk", "disk"]  # type: ignore[union-attr]
    concat = f"final;/files/{b} /files/{a} /files/{c} /files/{a}"
    res = await tus.request("POST", tus.collection, {"Upload-Concat": concat})
    assert res.code == 201, res.body
    final_id = res.headers["Location"].rsplit("/", 1)[-1]
    info = await ctx.composer.state.get(final_id)
    assert info is not None and info.is_complete and info.storage == "s3"
    assert int(info.storage_meta["copied_parts"]) >= 2
    expected = small + big + mid + big
    assert s3t.object_bytes(s3_endpoint, bucket, final_id) == expected
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
    head = await tus.head(res.headers["Location"])
    assert head.headers["Upload-Offset"] == str(len(expected))


@pytest.mark.gen_test(timeout=120)
async def test_orphan_sweep_aborts_unowned_multipart_uploads(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    tus = Tus(http_client, base_url)
    _, live_id = await _partly_uploaded(tus, 20 * MIB, MIB, seed=13)
    boto = s3t.client(s3_endpoint)
    boto.create_multipart_upload(Bucket=bucket, Key=protocol.new_upload_id())  # nobody's upload
    # Young multipart uploads are spared (they may be being created right now);
    # moto reports a fixed Initiated time, so "now" is placed relative to it.
    initiated = s3t.multipart_uploads(s3_endpoint, bucket)[0]["Initiated"].timestamp()
    assert await sweep_orphans(ctx, now=initiated + 10, older_than=3600) == 0
    assert await sweep_orphans(ctx, now=initiated + 7200, older_than=3600) == 1
    left = s3t.multipart_uploads(s3_endpoint, bucket)
    assert [u["Key"] for u in left] == [live_id]
