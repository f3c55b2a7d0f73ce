"""``/openapi.json``: the OpenAPI 3.1 document (no authentication)."""

from __future__ import annotations

from handlers.base import BaseHandler
from tusd_py.rest.openapi import openapi_document


class OpenAPIHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET",)

    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish_json(200, openapi_document(self.ctx.config))
