"""``make_app``: the Tornado application with its routes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import tornado.web

from handlers.base import NotFoundHandler
from handlers.collection import CollectionHandler
from handlers.health import HealthHandler, ReadyHandler
from handlers.metrics import MetricsHandler
from handlers.resource import UploadHandler
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
        (r"/metrics", MetricsHandler, kw),
    ]


def request_logger(ctx: AppContext) -> Callable[[tornado.web.RequestHandler], None]:
    """Tornado's ``log_function``: the JSON access line plus request metrics."""

    def log_request(handler: tornado.web.RequestHandler) -> None:
        fields = access_log(handler)
        ctx.metrics.observe_request(
            str(fields["method"]), int(fields["status"]), fields["code"], handler.request.request_time()
        )

    return log_request


def make_app(ctx: AppContext, **settings: Any) -> tornado.web.Application:
    """The application serving ``ctx``; extra Tornado ``settings`` override defaults."""
    options: dict[str, Any] = {
        "log_function": request_logger(ctx),
        "default_handler_class": NotFoundHandler,
        "default_handler_args": {"ctx": ctx},
        "xsrf_cookies": False,
        "compress_response": False,
    }
    options.update(settings)
    return tornado.web.Application(routes(ctx), **options)
