"""``s3.tail_in_bucket``: two instances that share the state store and the
bucket but not a data dir continue each other's S3 upload; the unfinished
last part lives in the bucket as ``<key>.part``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tornado.testing
from tornado.httpclient import AsyncHTTPClient

from tests.integration import s3_support as s3t
from tests.tusclient import Tus
from tusd_py.app import make_app
from tusd_py.config import Config, describe, load_config
from tusd_py.context import AppContext
from tusd_py.server import build_context, http_server

MIB = s3t.MIB


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return s3t.new_bucket(s3_endpoint)


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
