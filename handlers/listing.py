"""``GET <base_path>``: the caller's uploads, a page at a time (admins: all).

Query: ``limit`` (1..``api.max_page_size``), ``cursor`` (from ``next_cursor``),
``state`` (uploading, complete, expired), ``visibility`` (public, private),
``include=partial`` (also list the partial uploads of concatenations, hidden
by default). Answer: ``{"items": [status documents], "next_cursor": str | null}``.
"""

from __future__ import annotations

from handlers.base import BaseHandler
from tusd_py.rest.listing import list_page, parse_query
from tusd_py.rest.status import documents_with_jobs


async def serve(handler: BaseHandler) -> None:
    """Answer the listing request of ``handler`` (already authenticated)."""
    principal = handler.principal
    assert principal is not None
    args = {
        name: handler.get_query_argument(name)
        for name in ("limit", "cursor", "state", "visibility", "include")
        if handler.get_query_argument(name, None) is not None
    }
    api = handler.ctx.config.api
    query = parse_query(args, default_limit=api.page_size, max_limit=api.max_page_size)
    rows, next_cursor = await list_page(handler.ctx.service, principal, query)
    items = await documents_with_jobs(handler.ctx, rows)
    handler.set_header("Cache-Control", "no-store")
    handler.finish_json(200, {"items": items, "next_cursor": next_cursor})
