"""Who uploads a spooled part: only the lock holder, and only until it lets go.

Two :class:`S3Storage` objects stand for two processes sharing a data dir and
one SQLite state database (the parts ledger); the one called A reaches moto
through a slow proxy, so its part uploads are still in flight when its
writer closes. Real moto, real SQLite; no mocks.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import tornado.ioloop

from storage.s3 import S3Storage
from tests.integration import s3_support as s3t
from tests.integration.tcp_proxy import TcpProxy
from tusd_py.core.config import load_config
from tusd_py.core.models import UploadInfo
from tusd_py.state.sqlite import SQLiteStateStore

MIB = s3t.MIB
LENGTH = 24 * MIB


@pytest.fixture
def slow(io_loop: tornado.ioloop.IOLoop, s3_endpoint: str) -> Iterator[TcpProxy]:
    """moto at 4 MiB/s: a 5 MiB part takes over a second."""
    p = TcpProxy(int(s3_endpoint.rsplit(":", 1)[1]), rate=4 * MIB)
    io_loop.run_sync(p.start)
    yield p
    io_loop.run_sync(p.stop)


@asynccontextmanager
async def _storage(tmp_path: Path, endpoint: str, bucket: str) -> AsyncIterator[S3Storage]:
    """One "process": an S3Storage on the shared data dir and database."""
    overrides = {
        "server.data_dir": str(tmp_path / "shared"),
        "auth.enabled": False,
        "local.fsync": "every_patch",  # the spool left behind is fsynced too
        **s3t.overrides(endpoint, bucket, concurrency=1, spool_parts=3, timeout=5.0),
    }
    state = await SQLiteStateStore.open(tmp_path / "state.db")
    storage = S3Storage(load_config(environ={}, overrides=overrides), state)
    try:
        yield storage
    finally:
        await storage.close()
        await state.close()


async def _create(storage: S3Storage, tmp_path: Path) -> UploadInfo:
    info = UploadInfo(id="a" * 32, owner="", length=LENGTH, storage="s3")
    info = info.replace(storage_meta=await storage.create(info))
    state = await SQLiteStateStore.open(tmp_path / "state.db")
    try:
        await state.create(info)
    finally:
        await state.close()
    return info


async def _publish(tmp_path: Path, info: UploadInfo, offset: int) -> UploadInfo:
    """What the service does when a request ends: record the new offset."""
    state = await SQLiteStateStore.open(tmp_path / "state.db")
    try:
        return await state.reset_offset(info.id, offset)
    finally:
        await state.close()


def _part_tasks() -> list[asyncio.Task[object]]:
    """Part uploads running in this process (any pipeline)."""
    return [
        t
        for t in asyncio.all_tasks()
        if getattr(t.get_coro(), "__qualname__", "") == "MultipartPipeline._upload"
    ]


@pytest.mark.gen_test(timeout=90)
async def test_a_holder_stops_its_part_uploads_before_it_lets_go(
    tmp_path: Path, s3_endpoint: str, slow: TcpProxy
) -> None:
    bucket = s3t.new_bucket(s3_endpoint)
    data = s3t.pattern(LENGTH, seed=5)
    first = 11 * MIB  # parts 1 and 2 sealed, part 3 being filled
    async with _storage(tmp_path, slow.url, bucket) as a, _storage(tmp_path, s3_endpoint, bucket) as b:
        info = await _create(a, tmp_path)
        writer = await a.open_writer(info)
        for start in range(0, first, MIB):
            await writer.write(data[start : start + MIB])
        for _ in range(400):  # bounded: 20 s until part 1 is on its way
            if slow.forwarded > MIB:
                break
            await asyncio.sleep(0.05)
        assert slow.forwarded > MIB and len(_part_tasks()) == 2  # part 2 waits for the slot
        await writer.close()
        # Released: A uploads nothing any more; the part it was sending was
        # confirmed and recorded, the queued one is left in the spool for B.
        assert _part_tasks() == [] and a.pipeline_of(info.id) is None
        recorded = [p.number for p in await b._ledger.list_parts(info.id)]
        spooled = sorted(p.name for p in b.spool(info.id).directory.iterdir())
        assert recorded == [1] and spooled == ["00002", "00003"], (recorded, spooled)
        assert await b.durable_offset(info) == first
        assert await a.durable_offset(info) == first
        info = await _publish(tmp_path, info, first)
        writer = await b.open_writer(info)
        for start in range(first, LENGTH, MIB):
            await writer.write(data[start : start + MIB])
        await writer.close()
        assert await a.durable_offset(info) == LENGTH
        await b.finish(await _publish(tmp_path, info, LENGTH))
    assert s3t.object_bytes(s3_endpoint, bucket, info.id) == data


@pytest.mark.gen_test(timeout=90)
async def test_a_failed_part_upload_is_retrieved_logged_and_reported(
    tmp_path: Path, s3_endpoint: str, slow: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    bucket = s3t.new_bucket(s3_endpoint)
    data = s3t.pattern(11 * MIB, seed=6)
    async with _storage(tmp_path, slow.url, bucket) as a:
        info = await _create(a, tmp_path)
        writer = await a.open_writer(info)
        for start in range(0, len(data), MIB):
            await writer.write(data[start : start + MIB])
        pipeline = a.pipeline_of(info.id)
        assert pipeline is not None
        # Part 2 waits for part 1's slot; its file vanishes before it is sent.
        pipeline.spool.path(2).unlink()
        with caplog.at_level(logging.WARNING, logger="tusd_py.storage"):
            for _ in range(400):  # bounded: 20 s
                if pipeline.failure is not None:
                    break
                await asyncio.sleep(0.05)
            assert pipeline.failure is not None
            failed = [r for r in caplog.records if getattr(r, "upload_id", None) == info.id]
            assert failed and "s3 part 2" in failed[0].getMessage()
            with pytest.raises(Exception) as raised:
                await pipeline.flush(final=False, stall=10)
            assert raised.value is pipeline.failure
            await writer.close()
        del pipeline, writer
        gc.collect()
        assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
