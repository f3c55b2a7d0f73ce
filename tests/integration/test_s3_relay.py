"""S3 relay against the real moto server: routing, pipelining, completion."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.integration import s3_support as s3t
from tests.tusclient import Tus
from tusd_py.context import AppContext

MIB = s3t.MIB


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return s3t.new_bucket(s3_endpoint)


@pytest.fixture
def config_overrides(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    return s3t.overrides(s3_endpoint, bucket)


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
