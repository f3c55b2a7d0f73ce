"""``s3.tail_in_bucket``: two instances that share the state store and the
bucket but not a data dir continue each other's S3 upload; the unfinished
last part lives in the bucket as ``<key>.part``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tornado.testing
from tornado.httpclient import AsyncHTTPClient

from handlers.app import make_app
from tests.integration import s3_support as s3t
from tests.tusclient import Tus
from tusd_py.cli.server import build_context, http_server
from tusd_py.core.config import Config, describe, load_config
from tusd_py.core.models import PartRecord
from tusd_py.ops.context import AppContext

MIB = s3t.MIB


@pytest.fixture
def config_overrides(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    return s3t.overrides(s3_endpoint, bucket, tail_in_bucket=True)


async def _second_instance(config: Config, data_dir: Path) -> tuple[AppContext, Any, str]:
    """Another instance: own data dir, same SQLite state and bucket."""
    overrides = {"server.data_dir": str(data_dir), "state.sqlite_path": str(config.sqlite_path)}
    other = load_config(environ={}, overrides={**_flatten(config), **overrides})
    ctx = await build_context(other)
    server = http_server(make_app(ctx), other)
    sock, port = tornado.testing.bind_unused_port("127.0.0.1")
    server.add_socket(sock)
    return ctx, server, f"http://127.0.0.1:{port}"


def _flatten(config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, values in describe(config).items():
        for key, value in values.items():
            if value != "***":
                out[f"{section}.{key}"] = value
    out["s3.secret_access_key"] = config.s3.secret_access_key
    return out


@pytest.mark.gen_test(timeout=120)
async def test_instances_without_shared_disk_continue_each_other(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    tmp_path: Path,
    s3_endpoint: str,
    bucket: str,
) -> None:
    data = s3t.pattern(20 * MIB + 11, seed=51)
    a = Tus(http_client, base_url)
    url = await a.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    path = url.replace(base_url, "")
    res = await a.patch(url, 0, data[: 7 * MIB])
    assert res.code == 204
    boto = s3t.client(s3_endpoint)
    tail = boto.head_object(Bucket=bucket, Key=f"{upload_id}.part")
    assert tail["ContentLength"] == 2 * MIB and tail["Metadata"] == {"part": "2"}

    ctx_b, server_b, base_b = await _second_instance(ctx.config, tmp_path / "other")
    try:
        b = Tus(http_client, base_b)
        head = await b.head(base_b + path)
        assert head.code == 200 and head.headers["Upload-Offset"] == str(7 * MIB)
        res = await b.patch(base_b + path, 7 * MIB, data[7 * MIB : 16 * MIB])
        assert res.code == 204 and res.headers["Upload-Offset"] == str(16 * MIB)
    finally:
        server_b.stop()
        await ctx_b.aclose()
    tail = boto.head_object(Bucket=bucket, Key=f"{upload_id}.part")
    assert tail["ContentLength"] == MIB and tail["Metadata"] == {"part": "4"}

    head = await a.head(url)
    assert head.headers["Upload-Offset"] == str(16 * MIB)
    res = await a.patch(url, 16 * MIB, data[16 * MIB :])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
    listed = boto.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == [upload_id]


@pytest.mark.gen_test(timeout=120)
async def test_deferred_length_upload_switches_to_s3_keeping_its_local_bytes(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    """The switch cuts the local file into spool parts; in tail-in-bucket mode
    loading the pipeline must adopt them, not replace them with the bucket's
    (empty) view of the upload."""
    data = s3t.pattern(19 * MIB + 5, seed=52)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(None)
    upload_id = url.rsplit("/", 1)[-1]
    res = await tus.patch(url, 0, data[: 11 * MIB])
    assert res.code == 204
    res = await tus.patch(url, 11 * MIB, data[11 * MIB : 16 * MIB])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(16 * MIB), res.body
    info = await ctx.composer.state.get(upload_id)
    assert info is not None and info.storage_meta["phase"] == "s3"
    tail = s3t.client(s3_endpoint).head_object(Bucket=bucket, Key=f"{upload_id}.part")
    assert tail["ContentLength"] == MIB and tail["Metadata"] == {"part": "4"}
    res = await tus.patch(url, 16 * MIB, data[16 * MIB :], headers={"Upload-Length": str(len(data))})
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data)), res.body
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []


async def _dead_instance_recorded_part(
    ctx: AppContext, s3_endpoint: str, bucket: str, upload_id: str, number: int, body: bytes
) -> None:
    """What an instance killed mid-PATCH may leave behind: part ``number``
    uploaded and recorded, but the offset never published."""
    info = await ctx.composer.state.get(upload_id)
    assert info is not None
    meta = info.storage_meta
    res = s3t.client(s3_endpoint).upload_part(
        Bucket=bucket, Key=meta["key"], UploadId=meta["upload_id"], PartNumber=number, Body=body
    )
    await ctx.composer.state.put_part(upload_id, PartRecord(number, res["ETag"], len(body)))


@pytest.mark.gen_test(timeout=120)
async def test_a_patch_at_the_published_offset_works_when_more_was_recorded(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    """An instance died after recording a part but before publishing the
    offset: HEAD reports the published offset, and a PATCH there must succeed
    (the unpublished part is forgotten and replaced), not answer 409."""
    data = s3t.pattern(18 * MIB + 3, seed=53)
    junk = s3t.pattern(5 * MIB, seed=54)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    res = await tus.patch(url, 0, data[: 7 * MIB])  # part 1 + a 2 MiB ``.part`` of part 2
    assert res.code == 204
    await _dead_instance_recorded_part(ctx, s3_endpoint, bucket, upload_id, 2, junk)
    # The client continues from its last 204 (a HEAD now would report the
    # recorded part: a dead writer's durable bytes are caught up).
    recorded = await ctx.composer.state.get(upload_id)
    assert recorded is not None and recorded.offset == 7 * MIB
    res = await tus.patch(url, 7 * MIB, data[7 * MIB : 10 * MIB])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(10 * MIB), res.body
    # At a part boundary (no ``.part`` object) the same holds.
    await _dead_instance_recorded_part(ctx, s3_endpoint, bucket, upload_id, 3, junk)
    res = await tus.patch(url, 10 * MIB, data[10 * MIB :])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data)), res.body
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
