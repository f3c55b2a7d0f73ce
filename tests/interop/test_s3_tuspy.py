"""tuspy (the Python tus client) uploading a file that is routed to S3."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tusclient import client as tus_client

from tests.integration import s3_support as s3t
from tusd_py.ops.context import AppContext

MIB = s3t.MIB


@pytest.fixture
def config_overrides(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    return s3t.overrides(s3_endpoint, bucket)


@pytest.mark.interop
@pytest.mark.gen_test(timeout=120)
async def test_tuspy_upload_routed_to_s3(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    data = s3t.pattern(14 * MIB + 333, seed=41)

    def upload() -> str:
        uploader = tus_client.TusClient(base_url + "/files/").uploader(
            file_stream=io.BytesIO(data), chunk_size=3 * MIB, metadata={"filename": "big.bin"}
        )
        uploader.upload()
        return str(uploader.url)

    url = await asyncio.get_running_loop().run_in_executor(None, upload)
    upload_id = url.rsplit("/", 1)[-1]
    info = await ctx.composer.state.get(upload_id)
    assert info is not None and info.storage == "s3" and info.is_complete
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
