"""The upload page (SPEC §10): ``GET /`` and ``GET /web/static/{name}``.

Both answer from memory (:class:`tusd_py.web.WebAssets`, read once at
startup) with a strict Content-Security-Policy (:data:`tusd_py.web.CSP`:
every script, style, image and connection from this origin only), a strong
ETag and ``304 Not Modified`` on a matching ``If-None-Match``. The page is
revalidated on every load (``no-cache``); an asset requested with the
``?v=`` hash the page names is ``immutable`` for a year, any other request
for it is revalidated. The page needs no token: it signs in from the
browser (:mod:`tusd_py.web`).
"""

from __future__ import annotations

import re
from typing import Any

import tornado.web

from handlers.base import BaseHandler
from tusd_py.core import errors
from tusd_py.ops.context import AppContext
from tusd_py.web import CSP, STATIC_PREFIX, Asset, WebAssets

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class AssetHandler(BaseHandler):
    """Shared answer of an in-memory asset with validators and security headers."""

    SUPPORTED_METHODS = ("GET", "HEAD")

    def initialize(self, ctx: AppContext, *, assets: WebAssets, page: Asset) -> None:  # type: ignore[override]
        super().initialize(ctx)
        self.assets = assets
        self.page = page

    def answer(self, asset: Asset, cache_control: str) -> None:
        """Send ``asset`` (headers only for HEAD; 304 when the client holds it)."""
        self.clear_header("Tus-Resumable")
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("Cache-Control", cache_control)
        self.set_header("ETag", asset.etag)
        self.set_header("Content-Type", asset.content_type)
        if asset.etag in _etags(self.request.headers.get("If-None-Match", "")):
            self.set_status(304)
            self.finish()
            return
        self.set_header("Content-Length", str(len(asset.body)))
        if self.request.method == "HEAD":
            self.finish()
            return
        self.finish(asset.body)


class PageHandler(AssetHandler):
    """``GET /``: the upload page."""

    def get(self) -> None:
        self.answer(self.page, REVALIDATE)

    def head(self) -> None:
        self.get()


class StaticHandler(AssetHandler):
    """``GET /web/static/{name}``: one asset of the page."""

    def get(self, name: str) -> None:
        asset = self.assets.get(name)
        if asset is None:
            raise errors.NotFound(f"no asset {name[:80]!r}")
        hashed = self.get_query_argument("v", None) == asset.digest
        self.answer(asset, IMMUTABLE if hashed else REVALIDATE)

    def head(self, name: str) -> None:
        self.get(name)


def _etags(header: str) -> set[str]:
    """The entity tags of an ``If-None-Match`` value (weak ones as strong)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def web_routes(ctx: AppContext) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """Routes of the upload page (not part of the REST API document)."""
    assets = WebAssets.load()
    kw = {"ctx": ctx, "assets": assets, "page": assets.page(ctx.config)}
    return [
        (r"/", PageHandler, kw),
        (rf"{re.escape(STATIC_PREFIX)}([^/]+)", StaticHandler, kw),
    ]
