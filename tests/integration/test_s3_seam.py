"""The storage/state seam on S3 (issue 13): the service alone reads and writes
the upload record; the S3 backend gets the record it loaded under the lock
and returns the ``storage_meta`` to save.

Real moto and the real SQLite state store; reads are counted by wrapping the
store's ``get`` (so a storage or service re-reading the record shows up).
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.integration import s3_support as s3t
from tests.tusclient import Tus
from tusd_py.core.models import UploadInfo
from tusd_py.ops.context import AppContext

MIB = s3t.MIB

#: Reads of the record by one PATCH: one before the lock (refusing a request
#: that would fail anyway without disturbing the holder), one under it.
READS_PER_PATCH = 2


@pytest.fixture
def config_overrides(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    """Uploads above 1 MiB go to S3 (5 MiB parts): small bodies reach every phase."""
    return s3t.overrides(s3_endpoint, bucket, threshold=MIB)


@pytest.fixture
def reads(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each upload's record is read from the state store."""
    counts: Counter[str] = Counter()
    real: Callable[[str], Awaitable[UploadInfo | None]] = ctx.composer.state.get

    async def counting(upload_id: str) -> UploadInfo | None:
        counts[upload_id] += 1
        return await real(upload_id)

    monkeypatch.setattr(ctx.composer.state, "get", counting)
    return counts


async def _record(ctx: AppContext, upload_id: str) -> UploadInfo:
    info = await ctx.composer.state.get(upload_id)
    assert info is not None
    return info


@pytest.mark.gen_test(timeout=60)
async def test_one_s3_patch_reads_the_record_once_under_the_lock(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    reads: Counter[str],
    s3_endpoint: str,
    bucket: str,
) -> None:
    data = s3t.pattern(6 * MIB + 5, seed=21)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(len(data))
    upload_id = url.rsplit("/", 1)[-1]
    assert (await _record(ctx, upload_id)).storage_meta["phase"] == "s3"
    reads.clear()
    res = await tus.patch(url, 0, data[: 2 * MIB])
    assert res.code == 204, res.body
    assert reads[upload_id] == READS_PER_PATCH
    reads.clear()
    res = await tus.patch(url, 2 * MIB, data[2 * MIB :])  # completes the multipart upload
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert reads[upload_id] == READS_PER_PATCH
    info = await _record(ctx, upload_id)
    assert info.is_complete and info.storage_meta["phase"] == "complete"
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data


@pytest.mark.gen_test(timeout=60)
async def test_the_session_saves_the_meta_of_a_switch_to_s3(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    reads: Counter[str],
    s3_endpoint: str,
    bucket: str,
) -> None:
    data = s3t.pattern(3 * MIB + 7, seed=22)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(None)
    upload_id = url.rsplit("/", 1)[-1]
    assert (await _record(ctx, upload_id)).storage_meta["phase"] == "local"
    reads.clear()
    res = await tus.patch(url, 0, data[: 2 * MIB])  # crosses the 1 MiB threshold
    assert res.code == 204 and res.headers["Upload-Offset"] == str(2 * MIB)
    assert reads[upload_id] == READS_PER_PATCH
    info = await _record(ctx, upload_id)
    meta = info.storage_meta
    assert meta["phase"] == "s3" and meta["key"] == upload_id
    [multipart] = s3t.multipart_uploads(s3_endpoint, bucket)
    assert multipart["UploadId"] == meta["upload_id"]
    assert not (ctx.config.data_dir / "uploads" / upload_id).exists()  # the local file was given up
    res = await tus.patch(url, 2 * MIB, data[2 * MIB :], headers={"Upload-Length": str(len(data))})
    assert res.code == 204 and res.headers["Upload-Offset"] == str(len(data))
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []


@pytest.mark.gen_test(timeout=60)
async def test_a_checksummed_body_switching_to_s3_saves_the_meta_too(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, s3_endpoint: str, bucket: str
) -> None:
    """A verified chunk is replayed into the writer at the end of the request:
    the switch it causes is saved the same way."""
    data = s3t.pattern(2 * MIB + 3, seed=23)
    tus = Tus(http_client, base_url)
    url = await tus.create_url(None)
    upload_id = url.rsplit("/", 1)[-1]
    digest = base64.b64encode(hashlib.sha1(data).digest()).decode()
    res = await tus.patch(
        url, 0, data, headers={"Upload-Length": str(len(data)), "Upload-Checksum": f"sha1 {digest}"}
    )
    assert res.code == 204, res.body
    info = await _record(ctx, upload_id)
    assert info.is_complete and info.storage_meta["phase"] == "complete"
    assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data


@pytest.mark.gen_test(timeout=60)
async def test_the_final_names_its_multipart_upload_before_the_assembly_runs(
    http_client: AsyncHTTPClient,
    base_url: str,
    ctx: AppContext,
    monkeypatch: pytest.MonkeyPatch,
    s3_endpoint: str,
    bucket: str,
) -> None:
    """Crash safety of concatenation: when the assembly starts, the final's
    saved record already names the multipart upload it is built in (so a
    crash leaves nothing that terminating the final would not free)."""
    tus = Tus(http_client, base_url)
    pieces = [s3t.pattern(2 * MIB, seed=seed) for seed in (24, 25)]
    ids = []
    for piece in pieces:
        url = await tus.create_url(len(piece), headers={"Upload-Concat": "partial"})
        assert (await tus.patch(url, 0, piece)).code == 204
        ids.append(url.rsplit("/", 1)[-1])
    storage = ctx.composer.storage("s3")
    real = storage.concatenate  # type: ignore[attr-defined]
    seen: list[tuple[dict[str, str], list[str]]] = []

    async def spying(final: UploadInfo, partials: Any) -> Any:
        saved = await _record(ctx, final.id)
        seen.append(
            (dict(saved.storage_meta), [u["UploadId"] for u in s3t.multipart_uploads(s3_endpoint, bucket)])
        )
        return await real(final, partials)

    monkeypatch.setattr(storage, "concatenate", spying)
    res = await tus.request(
        "POST", tus.collection, {"Upload-Concat": f"final;/files/{ids[0]} /files/{ids[1]}"}
    )
    assert res.code == 201, res.body
    final_id = res.headers["Location"].rsplit("/", 1)[-1]
    [(meta, open_uploads)] = seen
    assert meta["phase"] == "assembling" and meta["key"] == final_id and open_uploads == [meta["upload_id"]]
    info = await _record(ctx, final_id)
    assert info.is_complete and info.storage_meta["phase"] == "complete"
    assert s3t.object_bytes(s3_endpoint, bucket, final_id) == pieces[0] + pieces[1]
    assert s3t.multipart_uploads(s3_endpoint, bucket) == []
