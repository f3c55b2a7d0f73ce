"""Startup reconciliation (``tusd_py.reconcile``) with SQLite and with Redis."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest

from storage.local import LocalStorage
from tusd_py import protocol
from tusd_py.auth import LOCAL_PRINCIPAL
from tusd_py.context import AppContext
from tusd_py.models import UploadInfo, UploadState
from tusd_py.reconcile import reconcile


@pytest.fixture(params=["sqlite", "redis"])
def config_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "redis":
        return {
            "redis.url": request.getfixturevalue("redis_url"),
            "redis.prefix": f"rc-{uuid.uuid4().hex[:10]}:",
            "redis.lock_ttl": 2.0,
        }
    return {}


def _disk(ctx: AppContext) -> LocalStorage:
    storage = ctx.composer.storage("disk")
    assert isinstance(storage, LocalStorage)
    return storage


async def _upload_with(ctx: AppContext, data: bytes, length: int = 1000) -> UploadInfo:
    """An incomplete upload holding ``data``, with its offset published."""
    info = await ctx.service.create(LOCAL_PRINCIPAL, length=length)
    writer = await _disk(ctx).open_writer(info)
    await writer.write(data)
    await writer.close()
    return await ctx.composer.state.commit_offset(
        info.id, 0, len(data), updated_at=time.time(), expires_at=time.time() + 3600
    )


async def _offset(ctx: AppContext, upload_id: str) -> int:
    info = await ctx.composer.state.get(upload_id)
    assert info is not None
    return info.offset


@pytest.mark.gen_test(timeout=30)
async def test_an_offset_ahead_of_storage_is_corrected_down(ctx: AppContext) -> None:
    behind = await _upload_with(ctx, b"x" * 100)
    ahead = await _upload_with(ctx, b"y" * 100)
    fine = await _upload_with(ctx, b"z" * 100)
    os.truncate(_disk(ctx).path(behind.id), 40)  # a crash lost the unsynced tail
    with open(_disk(ctx).path(ahead.id), "ab") as f:  # written, never published
        f.write(b"y" * 20)
    report = await reconcile(ctx)
    assert report.corrected == 2 and report.skipped_locked == 0
    assert await _offset(ctx, behind.id) == 40
    assert await _offset(ctx, ahead.id) == 120
    assert await _offset(ctx, fine.id) == 100
    assert (await reconcile(ctx)).corrected == 0


@pytest.mark.gen_test(timeout=30)
async def test_an_upload_locked_by_a_live_writer_is_left_alone(ctx: AppContext) -> None:
    info = await _upload_with(ctx, b"x" * 100)
    os.truncate(_disk(ctx).path(info.id), 10)
    asked: list[bool] = []
    lock = ctx.composer.locker.new_lock(info.id)
    await lock.acquire(1.0, lambda: asked.append(True))
    try:
        report = await reconcile(ctx)
    finally:
        await lock.release()
    assert report.skipped_locked == 1 and report.corrected == 0
    assert asked == []  # the writer was not interrupted
    assert await _offset(ctx, info.id) == 100
    assert (await reconcile(ctx)).corrected == 1
    assert await _offset(ctx, info.id) == 10


@pytest.mark.gen_test(timeout=30)
async def test_orphaned_upload_data_is_removed(ctx: AppContext) -> None:
    root = _disk(ctx).root
    old = time.time() - 2 * 3600

    def orphan(name: str, mtime: float = old) -> str:
        path = root / name
        path.write_bytes(b"orphan")
        os.utime(path, (mtime, mtime))
        return name

    unknown = orphan(protocol.new_upload_id())
    young = orphan(protocol.new_upload_id(), mtime=time.time())
    not_an_upload = orphan("README")
    live = await _upload_with(ctx, b"live")
    os.utime(root / live.id, (old, old))
    expired = await _upload_with(ctx, b"gone")
    await ctx.composer.state.update(expired.id, {"state": UploadState.EXPIRED, "expires_at": None})
    os.utime(root / expired.id, (old, old))
    report = await reconcile(ctx)
    assert report.orphans_removed == 2
    remaining = {p.name for p in root.iterdir()}
    assert unknown not in remaining and expired.id not in remaining
    assert {young, not_an_upload, live.id} <= remaining
    assert (root / live.id).read_bytes() == b"live"
