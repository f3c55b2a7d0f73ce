"""Startup reconciliation: make the state store agree with the storages.

Run by every instance (and by the first worker of ``--workers N``) before it
serves, while other instances may already be serving the same uploads:

* **Offsets.** The storage is the truth for bytes. An incomplete upload whose
  recorded offset differs from what its storage durably holds is corrected
  (down when the record is ahead, e.g. after a crash lost unsynced bytes; up
  when a crash came between a write and its publication). The correction is
  made under the upload's lock, taken with ``try_acquire``: a live writer on
  another instance is never interrupted, and an upload it holds is skipped
  (its own session reconciles under the lock on the next PATCH).
* **Locks and leases** need nothing here: Redis locks expire ``lock_ttl``
  after their holder stopped renewing them; in-process locks die with it.
* **Orphans.** Storages implementing :class:`storage.base.OrphanSweeper`
  free leftovers no live upload owns (S3 multipart uploads of unknown or
  expired uploads).
* Staging files of checksummed PATCHes left by a crash are removed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from storage.base import OrphanSweeper
from tusd_py import errors
from tusd_py.checksum import clear_staging
from tusd_py.context import AppContext
from tusd_py.models import UploadState

log = logging.getLogger("tusd_py.app")


@dataclass
class Reconciliation:
    """What one reconciliation pass did."""

    checked: int = 0
    corrected: int = 0
    skipped_locked: int = 0
    orphans_removed: int = 0


async def reconcile_offsets(ctx: AppContext, report: Reconciliation, batch: int = 500) -> None:
    """Correct offsets of incomplete uploads to what storage holds."""
    composer = ctx.composer
    state = composer.state
    after = ""
    for _ in range(10_000_000):  # bounded by the number of uploads
        ids = await state.list_ids(after, batch)
        if not ids:
            break
        for upload_id in ids:
            info = await state.get(upload_id)
            if info is None or info.state is not UploadState.UPLOADING:
                continue
            report.checked += 1
            try:
                held = await composer.storage(info.storage).durable_offset(info)
            except (errors.TusError, LookupError) as exc:
                log.warning("cannot check the offset of %s: %s", upload_id, exc)
                continue
            if held == info.offset:
                continue
            lock = composer.locker.new_lock(upload_id)
            if not await lock.try_acquire(lambda: None):
                report.skipped_locked += 1
                continue
            try:
                if await _correct(ctx, upload_id):
                    report.corrected += 1
            finally:
                await lock.release()
        after = ids[-1]


async def _correct(ctx: AppContext, upload_id: str) -> bool:
    """Re-check under the lock and reset the offset; True if it changed."""
    state = ctx.composer.state
    info = await state.get(upload_id)
    if info is None or info.state is not UploadState.UPLOADING:
        return False
    held = await ctx.composer.storage(info.storage).durable_offset(info)
    if held == info.offset:
        return False
    log.warning(
        "reconciled offset of %s from %d to %d (storage is the truth)",
        upload_id,
        info.offset,
        held,
        extra={"upload_id": upload_id, "offset": held},
    )
    await state.reset_offset(upload_id, held)
    return True


async def sweep_orphans(ctx: AppContext, now: float) -> int:
    """Let every storage that can free orphaned data (e.g. S3 multipart
    uploads of unknown or expired uploads) do so; returns how many items."""
    removed = 0
    for name, storage in ctx.composer.storages.items():
        if not isinstance(storage, OrphanSweeper):
            continue
        try:
            removed += await storage.sweep_orphans(now=now)
        except errors.TusError as exc:
            log.warning("orphan sweep of storage %s failed: %s", name, exc.message)
    return removed


async def reconcile(ctx: AppContext, batch: int = 500) -> Reconciliation:
    """One startup pass (see the module docstring)."""
    now = time.time()
    clear_staging(ctx.service.staging_dir, older_than=ctx.config.server.network_timeout * 2, now=now)
    report = Reconciliation()
    try:
        await reconcile_offsets(ctx, report, batch)
        report.orphans_removed = await sweep_orphans(ctx, now)
    except errors.BackendError as exc:
        # Serve anyway: every PATCH re-checks its upload's offset under the lock.
        log.warning("reconciliation stopped early: %s", exc.message)
    if report.corrected or report.orphans_removed or report.skipped_locked:
        log.info(
            "reconciliation: %d offsets corrected, %d orphans removed, %d uploads busy",
            report.corrected,
            report.orphans_removed,
            report.skipped_locked,
        )
    return report
