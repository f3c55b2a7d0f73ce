"""``/healthz`` (the process is alive) and ``/readyz`` (fit to take uploads).

``/readyz`` answers 200 ``{"ready": true, "checks": {...}}`` or 503 with the
failing checks (draining, state store, storages, Redis); see
:mod:`tusd_py.ops.health`.
"""

from __future__ import annotations

from handlers.base import BaseHandler
from tusd_py.ops.health import readiness


class HealthHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET", "HEAD")

    def get(self) -> None:
        self.finish_json(200, {"status": "ok"})

    head = get


class ReadyHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET", "HEAD")

    async def get(self) -> None:
        ready, checks = await readiness(self.ctx)
        self.set_header("Cache-Control", "no-store")
        if not ready:
            self.error_code = "ERR_NOT_READY"
        self.finish_json(200 if ready else 503, {"ready": ready, "checks": checks})

    head = get
