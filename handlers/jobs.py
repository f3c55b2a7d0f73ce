"""Job routes (SPEC §7).

* ``POST /process/{file_id}`` with optional JSON ``{"kind": "index" | "sha256"}``
  (default ``index``) → 202 ``{"job_id", "file_id", "kind", "status"}`` and
  ``Location: /jobs/{job_id}``. Owner or admin only (others get 404, as on
  tus HEAD); 409 ``ERR_UPLOAD_INCOMPLETE`` until the upload is complete; 415
  for ``index`` of an upload that is neither CSV nor NDJSON. While the file
  has a PENDING/PROCESSING job of that kind, that job is answered; a FAILED
  one (dead letter) is queued again with fresh attempts.
* ``GET /jobs/{job_id}`` → the job document (:meth:`JobRecord.view`); the
  owner's and admins' only.
"""

from __future__ import annotations

import re

from handlers.base import BaseHandler
from handlers.links import JsonRouteHandler
from tusd_py.core import errors
from tusd_py.core.models import iso_time
from tusd_py.jobs.index import tabular_format
from tusd_py.jobs.records import USER_KINDS
from tusd_py.jobs.system import JobSystem

JOB_ID = re.compile(r"[0-9a-f]{32}")


def job_system(handler: BaseHandler) -> JobSystem:
    jobs = handler.ctx.jobs
    if jobs is None:
        raise errors.NotFound("this server does not process uploads")
    return jobs


class ProcessHandler(JsonRouteHandler):
    SUPPORTED_METHODS = ("POST", "OPTIONS")

    async def post(self, file_id: str) -> None:
        principal = self.principal
        assert principal is not None
        self.upload_id = file_id
        kind = self.json_body().get("kind", "index")
        if kind not in USER_KINDS:
            raise errors.InvalidBody(f'"kind" must be one of {", ".join(USER_KINDS)}, got {kind!r}')
        info = await self.ctx.service.get(principal, file_id)
        if not info.is_complete:
            raise errors.UploadIncomplete(
                f"upload {file_id} holds {info.offset} of {info.length} bytes; process it once it is complete"
            )
        if kind == "index" and tabular_format(info) is None:
            raise errors.UnsupportedMediaType(
                "only CSV (text/csv) and NDJSON (application/x-ndjson) uploads can be indexed; "
                'declare the type with the "filetype" metadata or name the file *.csv / *.ndjson'
            )
        jobs = job_system(self)
        job = await jobs.call(jobs.submit, info, kind, principal.tier)
        self.set_header("Location", f"/jobs/{job.job_id}")
        self.finish_json(
            202, {"job_id": job.job_id, "file_id": job.file_id, "kind": job.kind, "status": job.status.value}
        )


class JobHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET", "OPTIONS")

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        await self.admit("request")

    def options(self, job_id: str) -> None:
        self.answer_preflight()

    async def get(self, job_id: str) -> None:
        principal = self.principal
        assert principal is not None
        jobs = job_system(self)
        job = await jobs.call(jobs.store.get, job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None or not (principal.is_admin or job.owner == principal.user):
            raise errors.NotFound(f"no job {job_id} (unknown, or another user's)")
        self.set_header("Cache-Control", "no-store")
        self.finish_json(200, job.view(iso_time))
