"""``GET /files/{id}/rows?limit=&cursor=``: the rows an ``index`` job stored.

Answer: ``{"columns": [...], "rows": [{column: value}], "next_cursor", "total"}``
in file order; ``next_cursor`` is null on the last page. Who may read: as a
download (owner, admin, or anyone for a ``public`` upload; see
:func:`handlers.download.resolve`). ``limit`` is 1..``[api] max_page_size``
(default ``[api] page_size``); a bad ``limit`` or ``cursor`` is 400
``ERR_INVALID_QUERY``; an upload never indexed is 404 ``ERR_NOT_FOUND``.
"""

from __future__ import annotations

import dataclasses

from handlers import download
from handlers.base import BaseHandler
from handlers.jobs import job_system
from tusd_py.core import errors


class RowsHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET", "OPTIONS")

    async def prepare(self) -> None:
        if self.request.method == "OPTIONS":
            return
        await self.admit("request", required=False)

    def options(self, file_id: str) -> None:
        self.answer_preflight()

    def _limit(self) -> int:
        api = self.ctx.config.api
        raw = self.get_query_argument("limit", None)
        if raw is None:
            return api.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= api.max_page_size:
            raise errors.InvalidQuery(f"limit must be an integer from 1 to {api.max_page_size}, got {raw!r}")
        return int(raw)

    def _cursor(self) -> int:
        raw = self.get_query_argument("cursor", None)
        if raw is None or raw == "":
            return 0
        if not raw.isdigit() or len(raw) > 19:
            raise errors.InvalidQuery("cursor must be the next_cursor of a previous page")
        return int(raw)

    async def get(self, file_id: str) -> None:
        self.upload_id = file_id
        limit, after = self._limit(), self._cursor()
        info = await download.resolve(self, file_id)
        jobs = job_system(self)
        page = await jobs.call(jobs.rows.page, info.id, after, limit)
        if page is None:
            raise errors.NotFound(
                f"upload {file_id} has no rows: it is not indexed (yet); POST /process/{file_id} indexes it"
            )
        self.set_header("Cache-Control", "no-store")
        self.finish_json(200, dataclasses.asdict(page))
