"""``make_app``: the Tornado application with its routes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import tornado.httputil
import tornado.web

from handlers import quickhead
from handlers.base import HeadersTooLargeHandler, NotFoundHandler, app_settings, request_head_size
from handlers.collection import CollectionHandler
from handlers.health import HealthHandler, ReadyHandler
from handlers.index import IndexHandler
from handlers.jobs import JobHandler, ProcessHandler
from handlers.links import LinkHandler, VisibilityHandler
from handlers.live import EventsHandler
from handlers.metrics import MetricsHandler
from handlers.openapi import OpenAPIHandler
from handlers.resource import UploadHandler
from handlers.rows import RowsHandler
from handlers.status import StatusHandler
from handlers.web import web_routes
from tusd_py.ops.context import AppContext
from tusd_py.ops.logs import AccessLog


def routes(ctx: AppContext) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The URL table; every handler receives ``ctx``."""
    base = re.escape(ctx.config.server.base_path)
    kw = {"ctx": ctx}
    return [
        (rf"{base}?", CollectionHandler, kw),
        (rf"{base}([^/]+)/?", UploadHandler, kw),
        (rf"{base}([^/]+)/link", LinkHandler, kw),
        (rf"{base}([^/]+)/visibility", VisibilityHandler, kw),
        (rf"{base}([^/]+)/rows", RowsHandler, kw),
        (r"/process/([^/]+)/?", ProcessHandler, kw),
        (r"/jobs/([^/]+)/?", JobHandler, kw),
        (r"/healthz", HealthHandler, kw),
        (r"/readyz", ReadyHandler, kw),
        (r"/metrics", MetricsHandler, kw),
        (r"/index/?", IndexHandler, kw),
        (r"/index-status/([^/]+)/?", StatusHandler, kw),
        (r"/openapi\.json", OpenAPIHandler, kw),
        (r"/events", EventsHandler, kw),  # live events (tusd_py/live)
    ]


def request_logger(ctx: AppContext) -> Callable[[tornado.web.RequestHandler], None]:
    """Tornado's ``log_function``: the JSON access line plus request metrics."""
    access_log = AccessLog()

    def log_request(handler: tornado.web.RequestHandler) -> None:
        fields = access_log(handler)
        ctx.metrics.observe_request(
            str(fields["method"]), int(fields["status"]), fields["code"], handler.request.request_time()
        )

    return log_request


class TusApplication(tornado.web.Application):
    """The routes, plus a JSON 431 for header blocks over ``server.max_header_size``
    and the common tus HEAD answered below the handler (:mod:`handlers.quickhead`;
    setting ``quick_head=False`` turns that off).

    Tornado itself drops a connection whose headers exceed its own limit
    without answering; :func:`tusd_py.cli.server.http_server` sets that limit to
    :data:`handlers.httpconn.HEADER_READ_CAP` (2 MiB, or twice ours if larger)
    so the band in between (1 MiB of headers included) gets a proper answer here.
    """

    def __init__(self, ctx: AppContext, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ctx = ctx

    def find_handler(
        self, request: tornado.httputil.HTTPServerRequest, **kwargs: Any
    ) -> tornado.web._HandlerDelegate:
        if request_head_size(request) > self._ctx.config.server.max_header_size:
            return self.get_handler_delegate(request, HeadersTooLargeHandler, {"ctx": self._ctx})
        delegate = super().find_handler(request, **kwargs)
        if (
            delegate.handler_class is UploadHandler
            and self.settings.get("quick_head", True)
            and len(delegate.path_args) == 1
            and quickhead.qualifies(request)
        ):
            try:
                upload_id = delegate.path_args[0].decode("utf-8")
            except UnicodeDecodeError:
                return delegate
            return quickhead.QuickHead(self, request, delegate, self._ctx, upload_id)  # type: ignore[return-value]
        return delegate


def make_app(ctx: AppContext, **settings: Any) -> tornado.web.Application:
    """The application serving ``ctx``; extra Tornado ``settings`` override defaults."""
    options: dict[str, Any] = {
        "log_function": request_logger(ctx),
        "default_handler_class": NotFoundHandler,
        "default_handler_args": {"ctx": ctx},
        "xsrf_cookies": False,
        "compress_response": False,
        **app_settings(),
    }
    options.update(settings)
    return TusApplication(ctx, routes(ctx) + web_routes(ctx), **options)
