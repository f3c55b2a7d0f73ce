"""``/metrics``: the Prometheus text exposition of ``AppContext.metrics``."""

from __future__ import annotations

from handlers.base import BaseHandler


class MetricsHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET",)

    def get(self) -> None:
        body, content_type = self.ctx.metrics.exposition()
        self.set_header("Content-Type", content_type)
        self.set_header("Cache-Control", "no-store")
        self.finish(body)
