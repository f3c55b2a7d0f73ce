"""Startup reconciliation (``tusd_py.ops.reconcile``) with SQLite and with Redis."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from storage.base import Leftover, OrphanSweeper
from storage.local import LocalStorage
from tusd_py.auth.authenticator import LOCAL_PRINCIPAL
from tusd_py.core import errors, protocol
from tusd_py.core.models import UploadInfo, UploadState
from tusd_py.locking.liveness import SUFFIX, boot_id
from tusd_py.locking.redis import RedisLocker
from tusd_py.ops.context import AppContext
from tusd_py.ops.reconcile import ORPHAN_AGE, reconcile


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
    """A storage with leftovers (like S3 multipart uploads): ``held`` lists
    ``(upload_id, handle)`` pairs; a live record owns the one whose handle is
    ``"h-<its id>"``. It reads no record: the reconciliation judges them."""

    def __init__(self, root: Path, held: list[tuple[str, str]]) -> None:
        super().__init__(root)
        self.held = held
        self.calls: list[tuple[float, float]] = []

    async def leftovers(self, older_than: float, now: float) -> Sequence[Leftover]:
        self.calls.append((older_than, now))
        return [Leftover(i, f"key-{i}", handle, now - older_than - 1) for i, handle in self.held]

    def owns(self, info: UploadInfo, leftover: Leftover) -> bool:
        return leftover.handle == f"h-{info.id}"

    async def remove_leftover(self, leftover: Leftover) -> None:
        self.held.remove((leftover.upload_id, leftover.handle))


class BrokenSweeper(LocalStorage):
    async def leftovers(self, older_than: float, now: float) -> Sequence[Leftover]:
        raise errors.StorageUnavailable("endpoint down")

    def owns(self, info: UploadInfo, leftover: Leftover) -> bool:
        return True

    async def remove_leftover(self, leftover: Leftover) -> None:
        raise AssertionError("nothing was listed")


@pytest.mark.gen_test(timeout=30)
async def test_reconciliation_lets_storages_sweep_their_orphans(ctx: AppContext, tmp_path: Path) -> None:
    live = await _upload_with(ctx, b"live")
    expired = await _upload_with(ctx, b"gone")
    await ctx.composer.state.update(expired.id, {"state": UploadState.EXPIRED, "expires_at": None})
    unknown = protocol.new_upload_id()
    held = [(live.id, f"h-{live.id}"), (live.id, "h-replaced"), (expired.id, f"h-{expired.id}")]
    sweeper = LeftoverStore(tmp_path / "leftovers", [*held, (unknown, f"h-{unknown}")])
    assert isinstance(sweeper, OrphanSweeper)
    ctx.composer.storages["leftovers"] = sweeper
    ctx.composer.storages["broken"] = BrokenSweeper(tmp_path / "broken")  # logged, not fatal
    before = time.time()
    report = await reconcile(ctx)
    # Unknown, expired, and no longer named by the live record: removed.
    assert report.orphans_removed == 3
    assert sweeper.held == [(live.id, f"h-{live.id}")]
    assert len(sweeper.calls) == 1 and sweeper.calls[0][0] == ORPHAN_AGE and sweeper.calls[0][1] >= before


async def _plant_lock(ctx: AppContext, upload_id: str, value: str, ttl: float) -> None:
    """Leave ``upload_id`` locked with ``value``, as a holder that stopped renewing."""
    locker = ctx.composer.locker
    assert isinstance(locker, RedisLocker)
    client = aioredis.Redis.from_url(ctx.config.redis.url)
    try:
        assert await client.set(locker.lock_key(upload_id), value, nx=True, px=int(ttl * 1000))
    finally:
        await client.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_a_lock_of_a_dead_process_on_this_host_does_not_make_an_upload_busy(
    ctx: AppContext, tmp_path: Path
) -> None:
    if not ctx.config.redis.url:
        pytest.skip("locks outlive their holder only on Redis")
    info = await _upload_with(ctx, b"x" * 100)
    with open(_disk(ctx).path(info.id), "ab") as f:  # written, never published: then killed
        f.write(b"x" * 50)
    dead_mark = tmp_path / f"dead{SUFFIX}"  # its process held it locked until it died
    dead_mark.write_bytes(b"")
    await _plant_lock(ctx, info.id, f"{'0' * 32} {boot_id()} {dead_mark}", ttl=60.0)
    report = await reconcile(ctx)
    assert report.corrected == 1 and report.skipped_locked == 0
    assert await _offset(ctx, info.id) == 150


@pytest.mark.gen_test(timeout=30)
async def test_an_upload_busy_with_an_unknown_holder_is_rechecked_after_the_lock_ttl(ctx: AppContext) -> None:
    if not ctx.config.redis.url:
        pytest.skip("locks outlive their holder only on Redis")
    info = await _upload_with(ctx, b"x" * 100)
    os.truncate(_disk(ctx).path(info.id), 30)
    # A holder on another host, which stopped renewing: its lock expires by itself.
    await _plant_lock(ctx, info.id, f"{'0' * 32} another-boot-id /elsewhere/mark", ttl=1.0)
    report = await reconcile(ctx)
    assert report.skipped_locked == 1 and report.busy == [info.id]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 * ctx.config.redis.lock_ttl + 5
    while await _offset(ctx, info.id) != 30:  # corrected in the background, no new pass
        assert loop.time() < deadline, "a busy upload was never rechecked"
        await asyncio.sleep(0.05)
