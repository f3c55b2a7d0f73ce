"""``/healthz`` (the process is alive) and ``/readyz`` (dependencies answer)."""

from __future__ import annotations

from handlers.base import BaseHandler
from tusd_py import errors


class HealthHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET", "HEAD")

    def get(self) -> None:
        self.finish_json(200, {"status": "ok"})

    head = get


class ReadyHandler(BaseHandler):
    SUPPORTED_METHODS = ("GET", "HEAD")

    async def get(self) -> None:
        checks: dict[str, str] = {}
        ready = not self.ctx.lifecycle.draining
        if not ready:
            checks["lifecycle"] = "draining"
        try:
            await self.ctx.composer.state.ping()
            checks["state"] = "ok"
        except errors.TusError as exc:
            checks["state"] = exc.message
            ready = False
        for name, storage in self.ctx.composer.storages.items():
            try:
                await storage.ping()
                checks[f"storage.{name}"] = "ok"
            except errors.TusError as exc:
                checks[f"storage.{name}"] = exc.message
                ready = False
        self.finish_json(200 if ready else 503, {"ready": ready, "checks": checks})

    head = get
