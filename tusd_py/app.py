"""``make_app``: the Tornado application with its routes."""

from __future__ import annotations

import re
from typing import Any

import tornado.web

from handlers.base import NotFoundHandler
from handlers.collection import CollectionHandler
from handlers.health import HealthHandler, ReadyHandler
from handlers.index import IndexHandler
from handlers.openapi import OpenAPIHandler
from handlers.resource import UploadHandler
from handlers.status import StatusHandler
from tusd_py.context import AppContext
from tusd_py.logs import access_log


def routes(ctx: AppContext) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The URL table; every handler receives ``ctx``."""
    base = re.escape(ctx.config.server.base_path)
    kw = {"ctx": ctx}
    return [
        (rf"{base}?", CollectionHandler, kw),
        (rf"{base}([^/]+)/?", UploadHandler, kw),
        (r"/healthz", HealthHandler, kw),
        (r"/readyz", ReadyHandler, kw),
        (r"/index/?", IndexHandler, kw),
        (r"/index-status/([^/]+)/?", StatusHandler, kw),
        (r"/openapi\.json", OpenAPIHandler, kw),
    ]


def make_app(ctx: AppContext, **settings: Any) -> tornado.web.Application:
    """The application serving ``ctx``; extra Tornado ``settings`` override defaults."""
    options: dict[str, Any] = {
        "log_function": access_log,
        "default_handler_class": NotFoundHandler,
        "default_handler_args": {"ctx": ctx},
        "xsrf_cookies": False,
        "compress_response": False,
    }
    options.update(settings)
    return tornado.web.Application(routes(ctx), **options)
