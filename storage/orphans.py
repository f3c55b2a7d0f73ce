"""Finding data that no live upload owns (see :class:`storage.base.OrphanSweeper`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from storage.base import RecordLookup
from tusd_py import protocol
from tusd_py.models import UploadInfo, UploadState

log = logging.getLogger("tusd_py.storage")

#: Data younger than this (seconds) is never an orphan: an upload's bytes are
#: created just before its record, possibly by another instance.
DEFAULT_GRACE = 3600.0


def is_orphan(info: UploadInfo | None, now: float) -> bool:
    """True if no live upload owns data recorded under ``info``'s id."""
    if info is None or info.state is UploadState.EXPIRED:
        return True
    return info.state is UploadState.UPLOADING and info.expires_at is not None and info.expires_at < now


def _old_entries(root: Path, older_than: float) -> Iterator[tuple[str, Path]]:
    with contextlib.suppress(FileNotFoundError), os.scandir(root) as entries:
        for entry in entries:
            if not protocol.is_valid_upload_id(entry.name):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < older_than:
                    yield entry.name, Path(entry.path)


async def sweep_upload_files(
    root: Path, lookup: RecordLookup, *, now: float, grace: float = DEFAULT_GRACE, batch: int = 500
) -> int:
    """Delete files named by an upload id under ``root`` whose upload is gone.

    Only files untouched for ``grace`` seconds are considered; the directory
    listing runs in an executor, ``batch`` names at a time.
    """
    loop = asyncio.get_running_loop()
    candidates = await loop.run_in_executor(None, lambda: list(_old_entries(root, now - grace)))
    removed = 0
    for start in range(0, len(candidates), batch):
        for upload_id, path in candidates[start : start + batch]:
            if not is_orphan(await lookup(upload_id), now):
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("could not remove orphaned %s: %s", path, exc)
                continue
            log.info("removed orphaned upload data %s", path, extra={"upload_id": upload_id})
            removed += 1
    return removed
