"""Jobs on an upload relayed to S3 (a real moto server): ``index`` and
``sha256`` stream the object from the bucket."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.http.jobs_support import (
    FAST_JOBS,
    all_rows,
    consuming_ctx,
    post_process,
    upload,
    wait_job,
    wait_state,
)
from tests.integration.s3_support import MIB, new_bucket, overrides
from tests.tusclient import Tus
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

ROWS = 100_000


@pytest.fixture
def config_overrides(s3_endpoint: str) -> dict[str, Any]:
    return {**overrides(s3_endpoint, new_bucket(s3_endpoint), threshold=1 * MIB), **FAST_JOBS}


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from consuming_ctx(io_loop, tus_config)


@pytest.mark.gen_test(timeout=90)
async def test_an_s3_upload_is_indexed_and_hashed_from_the_bucket(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    body = ("n,label\n" + "".join(f"{i},row-{i}\n" for i in range(ROWS))).encode()
    assert len(body) > MIB
    file_id = await upload(tus, body, filename="big.csv", filetype="text/csv")
    doc = await wait_state(http_client, base_url, file_id, "ready", timeout=60)
    assert doc["storage"] == "s3" and doc["jobs"][0]["result"]["rows"] == ROWS
    columns, rows, total = await all_rows(http_client, base_url, file_id, limit=1000)
    assert columns == ["n", "label"] and total == ROWS
    assert rows == [{"n": i, "label": f"row-{i}"} for i in range(ROWS)]
    code, accepted = await post_process(http_client, base_url, file_id, "sha256")
    assert code == 202
    job = await wait_job(http_client, base_url, accepted["job_id"], timeout=60)
    assert job["result"] == {
        "checksum": f"sha256:{hashlib.sha256(body).hexdigest()}",
        "sha256": hashlib.sha256(body).hexdigest(),
        "bytes": len(body),
    }
