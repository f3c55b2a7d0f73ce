"""Zero-copy appends into the S3 part spool (:mod:`storage.s3_splice`), over
real sockets against moto.

Uploads above the (lowered) threshold are relayed to S3 in 5 MiB parts
through a spool of two parts; their bodies are spliced into the spool files.
Whether a body took the splice path is read from the ``ZeroCopyAppend``
debug event (fixture ``spliced`` of :mod:`tests.http.test_zero_copy`).
Synchronisation is by polling the server's state with deadlines.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from handlers.zerocopy import HEAD_BYTES
from tests.http.conftest import Connect
from tests.http.test_zero_copy import cut_spliced_body, one_spliced_patch_keeps_alive
from tests.http.test_zero_copy import spliced as spliced  # noqa: F401 (a fixture)
from tests.integration import s3_support as s3t
from tests.tusclient import Tus
from tusd_py.ops.context import AppContext

MIB = 1 << 20
PART = s3t.PART
#: Deferred-length uploads switch to S3 past this (known lengths above it start there).
THRESHOLD = 1 * MIB


@pytest.fixture
def config_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = request.getfixturevalue("bucket")
    return s3t.overrides(endpoint, bucket, threshold=THRESHOLD, download="proxy")


async def stored_object(tus: Tus, url: str) -> bytes:
    got = await tus.get(url)
    assert got.code == 200, got.body[:300]
    return bytes(got.body)


@pytest.mark.gen_test(timeout=60)
async def test_large_patch_is_spliced_into_the_spool_and_keeps_alive(
    tus: Tus, connect: Connect, spliced: list[int]
) -> None:
    """One PATCH over several parts (more than the spool holds at once) is
    spliced, answered on a connection that stays open, and lands in S3."""
    data = os.urandom(3 * PART + 12345)
    url = await one_spliced_patch_keeps_alive(tus, connect, spliced, data)
    assert await stored_object(tus, url) == data


@pytest.mark.gen_test(timeout=60)
async def test_spliced_s3_body_cut_mid_part_keeps_exactly_the_bytes_received(
    tus: Tus, ctx: AppContext, connect: Connect, spliced: list[int]
) -> None:
    data = os.urandom(2 * PART + 4096)
    sent = PART + 123457
    url = await cut_spliced_body(tus, ctx, connect, spliced, data, sent)
    res = await tus.patch(url, sent, data[sent:])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert len(spliced) == 2 and spliced[1] > 0
    assert await stored_object(tus, url) == data


@pytest.mark.gen_test(timeout=60)
async def test_deferred_length_body_is_spliced_up_to_the_switch_to_s3(tus: Tus, spliced: list[int]) -> None:
    """A deferred-length upload is spliced into its local file up to the
    threshold, the copying path switches it to S3, the next PATCH is spliced
    into the part spool."""
    data = os.urandom(PART + 2 * MIB)
    first = 2 * MIB
    url = await tus.create_url(None)
    res = await tus.patch(url, 0, data[:first])
    assert res.code == 204 and res.headers["Upload-Offset"] == str(first)
    # spliced after the copied head, never past the threshold
    assert len(spliced) == 1 and 0 < spliced[0] <= THRESHOLD - HEAD_BYTES
    res = await tus.patch(url, first, data[first:], headers={"Upload-Length": str(len(data))})
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data)), res.body
    assert len(spliced) == 2 and spliced[1] > 0
    assert await stored_object(tus, url) == data
