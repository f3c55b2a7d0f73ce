"""Small JSON routes on an upload: signed download links and visibility.

* ``POST <base_path>{id}/link`` (owner or admin; optional JSON
  ``{"ttl": seconds}``, capped at ``[auth] link_ttl``) → 200
  ``{"url": ..., "expires_at": "<RFC 3339 UTC>"}``; the URL downloads the
  upload without a token until it expires (:mod:`tusd_py.auth.links`).
* ``GET <base_path>{id}/visibility`` → ``{"id", "visibility"}``;
  ``PATCH`` with JSON ``{"visibility": "public" | "private"}`` changes it
  (owner or admin) and answers the same document.

Other users get 404, as on every upload route. Bodies are JSON objects of at
most :data:`MAX_BODY` bytes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import tornado.web

from handlers.base import BaseHandler
from tusd_py.auth.visibility import set_visibility
from tusd_py.core import errors

MAX_BODY = 16 * 1024


@tornado.web.stream_request_body
class JsonRouteHandler(BaseHandler):
    """Authenticated JSON route on one upload; the body is read with a size bound."""

    _body: bytearray
    _too_big: bool = False

    async def prepare(self) -> None:
        self._body = bytearray()
        self.upload_id = self.path_args[0] if self.path_args else None
        if self.request.method == "OPTIONS":
            return
        length = self.request.headers.get("Content-Length", "").strip()
        if length and (not length.isdigit() or int(length) > MAX_BODY):
            raise errors.InvalidBody(f"the JSON body must be at most {MAX_BODY} bytes")
        await self.admit("request")

    def data_received(self, chunk: bytes) -> None:
        if len(self._body) + len(chunk) > MAX_BODY:
            self._too_big = True
            return
        self._body.extend(chunk)

    def json_body(self) -> dict[str, Any]:
        """The body as a JSON object (``{}`` when empty); raises :class:`errors.InvalidBody`."""
        if self._too_big:
            raise errors.InvalidBody(f"the JSON body must be at most {MAX_BODY} bytes")
        if not self._body.strip():
            return {}
        try:
            value = json.loads(self._body)
        except (ValueError, UnicodeDecodeError):
            raise errors.InvalidBody("the body is not valid JSON") from None
        if not isinstance(value, dict):
            raise errors.InvalidBody("the body must be a JSON object")
        return value

    def options(self, upload_id: str) -> None:
        self.answer_preflight()


class LinkHandler(JsonRouteHandler):
    SUPPORTED_METHODS = ("POST", "OPTIONS")

    async def post(self, upload_id: str) -> None:
        principal = self.principal
        assert principal is not None
        body = self.json_body()
        ttl = body.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
            raise errors.InvalidBody("ttl must be a positive number of seconds")
        signer = self.ctx.links
        if signer is None:
            raise errors.NotFound("this server does not issue download links")
        info = await self.ctx.service.get(principal, upload_id)
        link = signer.sign(info.id, float(ttl) if ttl is not None else None)
        expires_at = datetime.fromtimestamp(link.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.finish_json(200, {"url": f"{self.upload_url(info.id)}?{link.query}", "expires_at": expires_at})


class VisibilityHandler(JsonRouteHandler):
    SUPPORTED_METHODS = ("GET", "PATCH", "OPTIONS")

    async def get(self, upload_id: str) -> None:
        assert self.principal is not None
        info = await self.ctx.service.get(self.principal, upload_id)
        self.finish_json(200, {"id": info.id, "visibility": info.visibility})

    async def patch(self, upload_id: str) -> None:
        assert self.principal is not None
        body = self.json_body()
        if "visibility" not in body:
            raise errors.InvalidBody('send {"visibility": "public"} or {"visibility": "private"}')
        info = await set_visibility(self.ctx.service, self.principal, upload_id, body["visibility"])
        self.finish_json(200, {"id": info.id, "visibility": info.visibility})
