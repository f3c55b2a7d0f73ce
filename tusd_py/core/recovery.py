"""Offsets behind the durable bytes: move a record up to what its storage holds.

A writer that died between writing bytes and publishing its offset leaves the
record behind its storage. :func:`catch_up` (HEAD, before answering) and the
startup reconciliation (:mod:`tusd_py.ops.reconcile`) both use
:func:`correct_offset`, always under the upload's lock.
"""

from __future__ import annotations

import asyncio
import logging

from storage.base import Capability
from tusd_py.core import errors
from tusd_py.core.composer import Composer
from tusd_py.core.models import UploadInfo, UploadState

log = logging.getLogger("tusd_py.app")

#: Seconds HEAD waits for a storage's durable offset in :func:`catch_up`
#: (a non-answering S3 must not hold HEAD; a local stat, :attr:`Capability.HOST_OFFSET`,
#: is not timed).
CATCH_UP_WAIT = 1.0


async def catch_up(composer: Composer, info: UploadInfo) -> UploadInfo:
    """``info``, or its record moved up to the bytes its storage durably holds
    when it is behind them and no live writer holds its lock (one died
    between writing and publishing: see the module docstring).

    Never moves an offset down and never raises: when the check cannot be
    made (storage or lock backend failing, or the storage does not answer
    within :data:`CATCH_UP_WAIT`) ``info`` is returned as it is.
    A live writer's lock is not disturbed (``try_acquire``; it publishes
    its bytes itself).
    """
    if info.state is not UploadState.UPLOADING or info.is_complete:
        return info
    try:
        storage = composer.storage(info.storage)
        if Capability.HOST_OFFSET in storage.capabilities:
            held = await storage.durable_offset(info)  # a stat: no timer per HEAD
        else:  # asyncio.timeout, not wait_for: no Task and no extra loop turn per HEAD
            async with asyncio.timeout(CATCH_UP_WAIT):
                held = await storage.durable_offset(info)
        if held <= info.offset:
            return info
        lock = composer.locker.new_lock(info.id)
        if not await lock.try_acquire(lambda: None):
            return info
        try:
            await correct_offset(composer, info.id, up_only=True)
            return await composer.state.get(info.id) or info
        finally:
            await lock.release()
    except (errors.TusError, LookupError, TimeoutError) as exc:
        log.warning("cannot catch up the offset of %s: %r", info.id, exc, extra={"upload_id": info.id})
        return info


async def correct_offset(composer: Composer, upload_id: str, *, up_only: bool = False) -> bool:
    """Re-check under the lock and reset the offset (only up if ``up_only``);
    True if it changed."""
    state = composer.state
    info = await state.get(upload_id)
    if info is None or info.state is not UploadState.UPLOADING:
        return False
    held = await composer.storage(info.storage).durable_offset(info)
    if held == info.offset or (up_only and held < info.offset):
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
