"""``StatusHandler`` at ``/index-status/{file_id}``: live upload status (SPEC §6)."""

from __future__ import annotations

from handlers.base import BaseHandler
from tusd_py.status import document_with_jobs, load_status


class StatusHandler(BaseHandler):
    """GET: the status document; other users' uploads answer 404."""

    SUPPORTED_METHODS = ("GET", "OPTIONS")

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        await self.admit("request")

    def options(self, file_id: str) -> None:
        if self.is_preflight():
            self.answer_preflight()
            return
        self.set_header("Allow", "GET, OPTIONS")
        self.set_status(204)

    async def get(self, file_id: str) -> None:
        assert self.principal is not None
        self.upload_id = file_id
        info = await load_status(self.ctx.service, self.principal, file_id)
        self.set_header("Cache-Control", "no-store")
        self.finish_json(200, await document_with_jobs(self.ctx, info))
