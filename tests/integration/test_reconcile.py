"""Startup reconciliation (``tusd_py.reconcile``) with SQLite and with Redis."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from storage.base import OrphanSweeper
from storage.local import LocalStorage
from tusd_py import errors, protocol
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


class LeftoverStore(LocalStorage):
    """A storage with leftovers (like S3 multipart uploads): each id in
    ``leftovers`` that no live upload record owns is an orphan."""

    def __init__(self, root: Path, ctx: AppContext, leftovers: list[str]) -> None:
        super().__init__(root)
        self.ctx = ctx
        self.leftovers = leftovers
        self.calls: list[tuple[float, float | None]] = []

    async def sweep_orphans(self, older_than: float = 3600.0, now: float | None = None) -> int:
        self.calls.append((older_than, now))
        removed = 0
        for upload_id in list(self.leftovers):
            info = await self.ctx.composer.state.get(upload_id)
            if info is None or info.state is UploadState.EXPIRED:
                self.leftovers.remove(upload_id)
                removed += 1
        return removed


class BrokenSweeper(LocalStorage):
    async def sweep_orphans(self, older_than: float = 3600.0, now: float | None = None) -> int:
        raise errors.StorageUnavailable("endpoint down")


@pytest.mark.gen_test(timeout=30)
async def test_reconciliation_lets_storages_sweep_their_orphans(ctx: AppContext, tmp_path: Path) -> None:
    live = await _upload_with(ctx, b"live")
    expired = await _upload_with(ctx, b"gone")
    await ctx.composer.state.update(expired.id, {"state": UploadState.EXPIRED, "expires_at": None})
    unknown = protocol.new_upload_id()
    sweeper = LeftoverStore(tmp_path / "leftovers", ctx, [live.id, expired.id, unknown])
    assert isinstance(sweeper, OrphanSweeper)
    ctx.composer.storages["leftovers"] = sweeper
    ctx.composer.storages["broken"] = BrokenSweeper(tmp_path / "broken")  # logged, not fatal
    before = time.time()
    report = await reconcile(ctx)
    assert report.orphans_removed == 2
    assert sweeper.leftovers == [live.id]
    assert len(sweeper.calls) == 1 and (sweeper.calls[0][1] or 0) >= before
