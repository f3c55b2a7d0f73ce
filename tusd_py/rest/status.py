"""Upload status documents of the REST API (``GET /index-status/{id}``, listing).

The document is a pure function of an :class:`UploadInfo` and the clock; it
reads what the state store holds, which a streaming request refreshes every
``server.progress_interval`` seconds, so progress is visible from any
connection or instance.

``checksum`` is the whole upload's digest as ``"<algorithm>:<hex>"`` (e.g.
``"sha256:9f86d0…"``, comparable with ``sha256sum``) when the server computed
it: every PATCH of the upload carried ``Upload-Checksum`` with that algorithm
and was handled by one server process (each chunk verified, the running hash
kept in memory; see :mod:`tusd_py.core.checksum`). Otherwise it is null: no
checksum sent, mixed algorithms, a resume on another instance or worker, a
concatenated final, or an upload not complete yet; then a completed
``sha256`` job's digest is shown instead (see :mod:`tusd_py.jobs.digest`).

``jobs`` lists the upload's ``index`` and ``sha256`` jobs (oldest first, the
``GET /jobs/{id}`` documents). A complete upload's ``state`` follows its
latest job of each kind: ``processing`` while one is PENDING or PROCESSING,
else ``failed`` if one FAILED, else ``ready`` once one COMPLETED.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tusd_py.core import errors
from tusd_py.core.models import Principal, UploadInfo, is_expired, iso_time, may_access
from tusd_py.core.service import UploadService

if TYPE_CHECKING:
    from tusd_py.jobs.records import JobRecord
    from tusd_py.ops.context import AppContext

#: Job kinds shown in a status document.
SHOWN_KINDS = ("index", "sha256")

#: ``state`` values a document may carry (SPEC §6); the later ones come with jobs.
STATES = ("uploading", "complete", "processing", "ready", "failed", "expired")


def state_of(info: UploadInfo, now: float) -> str:
    """The REST state: an unfinished upload (or unassembled partial) past its
    expiry reads ``expired`` even before the sweeper has turned it into a tombstone."""
    if is_expired(info, now):
        return "expired"
    return info.state.value


def percent_of(info: UploadInfo) -> float | None:
    """Progress in percent with two decimals (None while the length is deferred)."""
    if info.length is None:
        return None
    if info.length == 0:
        return 100.0
    return round(min(info.offset, info.length) * 100.0 / info.length, 2)


def job_state(state: str, jobs: Sequence[JobRecord]) -> str:
    """``state`` of a complete upload refined by its jobs (see module docstring)."""
    if state != "complete":
        return state
    latest: dict[str, str] = {}
    for job in jobs:
        latest[job.kind] = job.status.value
    statuses = set(latest.values())
    if statuses & {"PENDING", "PROCESSING"}:
        return "processing"
    if "FAILED" in statuses:
        return "failed"
    return "ready" if "COMPLETED" in statuses else state


def job_checksum(jobs: Sequence[JobRecord]) -> str | None:
    """The digest of the latest completed ``sha256`` job, if any."""
    for job in reversed(jobs):
        if job.kind == "sha256" and job.status.value == "COMPLETED" and job.result:
            value = job.result.get("checksum")
            return str(value) if value else None
    return None


def status_document(
    info: UploadInfo, now: float, base_path: str = "/files/", jobs: Sequence[JobRecord] = ()
) -> dict[str, Any]:
    """The SPEC §6 status body of ``info`` at time ``now`` with its ``jobs``."""
    jobs = [j for j in jobs if j.kind in SHOWN_KINDS]
    return {
        "file_id": info.id,
        "filename": info.filename,
        "size": info.length,
        "offset": info.offset,
        "percent": percent_of(info),
        "state": job_state(state_of(info, now), jobs),
        "storage": info.storage,
        "visibility": info.visibility,
        "created_at": iso_time(info.created_at),
        "updated_at": iso_time(info.updated_at),
        "expires_at": iso_time(info.expires_at),
        "mime": info.mime,
        "checksum": info.checksum or job_checksum(jobs),
        "jobs": [job.view(iso_time) for job in jobs],
        "upload_url": f"{base_path}{info.id}",
        "status_url": f"/index-status/{info.id}",
    }


async def load_status(service: UploadService, principal: Principal, upload_id: str) -> UploadInfo:
    """The record behind a status request, expired ones included.

    Raises :class:`errors.UploadNotFound` for unknown ids and for uploads of
    other users (admins see all), exactly as tus HEAD does.
    """
    try:
        return await service.get(principal, upload_id)
    except errors.UploadGone:
        info = await service.state.get(upload_id)
        if info is None or not may_access(principal, info):
            raise errors.UploadNotFound() from None
        return info


async def document_with_jobs(ctx: AppContext, info: UploadInfo) -> dict[str, Any]:
    """:func:`status_document` of ``info`` with its jobs read from the job store."""
    jobs: list[JobRecord] = []
    if ctx.jobs is not None:
        jobs = await ctx.jobs.call(ctx.jobs.store.for_file, info.id)
    return status_document(info, ctx.service.clock(), ctx.config.server.base_path, jobs)


async def documents_with_jobs(ctx: AppContext, infos: Sequence[UploadInfo]) -> list[dict[str, Any]]:
    """:func:`status_document` of each of ``infos`` (a listing page) with its jobs,
    read in one trip off the IOLoop."""
    jobs: list[list[JobRecord]] = [[] for _ in infos]
    if ctx.jobs is not None and infos:
        store = ctx.jobs.store
        ids = [info.id for info in infos]
        jobs = await ctx.jobs.call(lambda: [store.for_file(i) for i in ids])
    now, base_path = ctx.service.clock(), ctx.config.server.base_path
    return [status_document(info, now, base_path, found) for info, found in zip(infos, jobs, strict=True)]
