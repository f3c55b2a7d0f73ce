"""File type checks on an upload routed to S3: a refused type leaves nothing
behind — no multipart upload, no object, no spooled bytes on local disk."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.integration import s3_support as s3t
from tests.restapi import eventually
from tests.tusclient import Tus
from tusd_py.ops.context import AppContext

MIB = s3t.MIB
#: A minimal x86-64 ELF executable header, then filler: 14 MiB, above the 12 MiB threshold.
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, 0x3E) + b"\0" * 40
DATA = ELF + s3t.pattern(14 * MIB - len(ELF), seed=9)


@pytest.fixture
def config_overrides(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    return s3t.overrides(s3_endpoint, bucket)


def local_upload_files(data_dir: Path) -> list[Path]:
    """Files under the data dir other than the state database and the auth secret."""
    return [
        p
        for p in data_dir.rglob("*")
        if p.is_file() and not p.name.startswith("state.db") and p.name != "auth-secret"
    ]


@pytest.mark.gen_test(timeout=120)
async def test_elf_routed_to_s3_is_refused_and_nothing_remains(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    s3_endpoint: str,
    bucket: str,
    data_dir: Path,
) -> None:
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(DATA))
    upload_id = url.rsplit("/", 1)[-1]
    info = await ctx.composer.state.get(upload_id)
    assert info is not None and info.storage == "s3"

    res = await tus.patch(url, 0, DATA[: 6 * MIB])

    assert res.code == 415, res.body
    error = json.loads(res.body)["error"]
    assert error["code"] == "ERR_FILE_TYPE_NOT_ALLOWED" and "application/x-executable" in error["message"]
    assert (await tus.head(url)).code == 404
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
    assert s3t.client(s3_endpoint).list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0

    async def freed() -> bool:
        return local_upload_files(data_dir) == []

    await eventually(freed, what="no spooled bytes left on local disk")
    assert any(p.name.startswith("state.db") for p in data_dir.rglob("*"))  # the server's data dir
