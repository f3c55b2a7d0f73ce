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
* **Dead holders' locks** do not make an upload "busy": ``try_acquire``
  takes over a Redis lock whose holder process is surely gone (this host,
  e.g. this very instance before a ``kill -9``; see
  :mod:`tusd_py.locking.liveness`), and in-process and ``flock`` locks die
  with their process. A holder that cannot be judged (another host) frees
  its lock ``lock_ttl`` after its last renewal, so uploads still busy are
  checked again in the background after ``lock_ttl`` (:func:`recheck_busy`,
  a bounded number of rounds, ended by shutdown); one still busy then has a
  live writer, whose session reconciles under the lock.
* **Later, per upload** (:func:`tusd_py.core.recovery.catch_up`, run by HEAD): a record behind
  what its storage durably holds while nobody alive holds its lock (a
  writer died after writing, before publishing) is moved up to the durable
  bytes first, so HEAD never reports less than what is durable.
* **Orphans.** Storages implementing :class:`storage.base.OrphanSweeper`
  list their leftovers older than :data:`ORPHAN_AGE` (S3 multipart
  uploads); each one whose upload's record is unknown, not uploading,
  expired, or no longer names it (:meth:`~storage.base.OrphanSweeper.owns`)
  is removed. The records are read here, never by the storage.
* Staging files of checksummed PATCHes left by a crash are removed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage.base import Leftover, OrphanSweeper
from tusd_py.core import errors
from tusd_py.core.checksum import clear_staging
from tusd_py.core.models import UploadState
from tusd_py.core.recovery import correct_offset
from tusd_py.state.base import StateStore

if TYPE_CHECKING:  # the context imports the service
    from tusd_py.ops.context import AppContext

log = logging.getLogger("tusd_py.app")


@dataclass
class Reconciliation:
    """What one reconciliation pass did."""

    checked: int = 0
    corrected: int = 0
    skipped_locked: int = 0
    orphans_removed: int = 0
    #: Uploads skipped because a holder had their lock (for :func:`recheck_busy`).
    busy: list[str] = field(default_factory=list)


#: Rounds of :func:`recheck_busy` (each ``lock_ttl`` after the previous one).
RECHECK_ROUNDS = 2

#: Seconds a storage leftover must have existed before it may be judged an
#: orphan (a younger one may belong to an upload being created right now).
ORPHAN_AGE = 3600.0


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
            outcome = await _correct_locked(ctx, upload_id)
            if outcome is None:
                report.skipped_locked += 1
                report.busy.append(upload_id)
            elif outcome:
                report.corrected += 1
        after = ids[-1]


async def _correct_locked(ctx: AppContext, upload_id: str) -> bool | None:
    """Correct under the upload's lock if nobody alive holds it: None if
    busy, else whether the offset changed."""
    lock = ctx.composer.locker.new_lock(upload_id)
    if not await lock.try_acquire(lambda: None):
        return None
    try:
        return await correct_offset(ctx.composer, upload_id)
    finally:
        await lock.release()


async def recheck_busy(ctx: AppContext, upload_ids: list[str], delay: float) -> int:
    """Retry uploads that were busy, ``delay`` seconds apart, for at most
    :data:`RECHECK_ROUNDS` rounds or until shutdown; returns how many
    offsets it corrected. Failures are logged, never raised."""
    corrected = 0
    pending = list(upload_ids)
    for _ in range(RECHECK_ROUNDS):
        if not pending or await ctx.lifecycle.wait_draining(delay):
            break
        still: list[str] = []
        for upload_id in pending:
            try:
                outcome = await _correct_locked(ctx, upload_id)
            except (errors.TusError, LookupError) as exc:
                log.warning(
                    "cannot recheck the offset of %s: %s", upload_id, exc, extra={"upload_id": upload_id}
                )
                continue
            if outcome is None:
                still.append(upload_id)
            elif outcome:
                corrected += 1
        pending = still
    if pending:
        log.info("reconciliation: %d uploads still busy (live writers reconcile them)", len(pending))
    return corrected


async def sweep_orphans(ctx: AppContext, now: float, older_than: float = ORPHAN_AGE) -> int:
    """Remove the leftovers of every storage that has them (see the module
    docstring) started more than ``older_than`` seconds before ``now``;
    returns how many. A failing storage is logged and skipped."""
    removed = 0
    for name, storage in ctx.composer.storages.items():
        if not isinstance(storage, OrphanSweeper):
            continue
        try:
            for leftover in await storage.leftovers(older_than, now):
                if not await _owned(ctx.composer.state, storage, leftover, now):
                    await storage.remove_leftover(leftover)
                    removed += 1
        except errors.TusError as exc:
            log.warning("orphan sweep of storage %s failed: %s", name, exc.message)
    return removed


async def _owned(state: StateStore, storage: OrphanSweeper, leftover: Leftover, now: float) -> bool:
    """True if a live record (uploading, not expired) still uses ``leftover``."""
    info = await state.get(leftover.upload_id)
    return (
        info is not None
        and info.state is UploadState.UPLOADING
        and (info.expires_at is None or info.expires_at >= now)
        and storage.owns(info, leftover)
    )


async def reconcile(ctx: AppContext, batch: int = 500) -> Reconciliation:
    """One startup pass (see the module docstring); uploads found busy are
    rechecked in the background (a task of ``ctx.lifecycle``) when their
    locks can outlive a dead holder (Redis)."""
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
    if report.busy and ctx.config.redis.url:
        ttl = ctx.config.redis.lock_ttl
        ctx.lifecycle.spawn(recheck_busy(ctx, report.busy, ttl * 1.1 + 0.1))
    return report
