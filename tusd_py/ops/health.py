"""Readiness: is this process fit to take new uploads?

Not ready while draining for shutdown, or when a configured dependency does
not answer: the state store, every storage (S3 included when configured) and
the extra ``AppContext.probes`` (e.g. the shared Redis client). All checks
run concurrently, each bounded by :data:`PROBE_TIMEOUT`, so a hung backend
turns ``/readyz`` false instead of hanging it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tusd_py.core import errors
from tusd_py.ops.context import AppContext

log = logging.getLogger("tusd_py.app")

#: Seconds a single dependency check may take before it counts as down.
PROBE_TIMEOUT = 3.0

#: A dependency check: returns when healthy, raises ``TusError`` when not.
Probe = Callable[[], Awaitable[None]]


async def _run(name: str, probe: Probe, timeout: float) -> tuple[str, str | None]:
    """``(name, None)`` when healthy, else ``(name, reason)``."""
    try:
        await asyncio.wait_for(probe(), timeout)
        return name, None
    except errors.TusError as exc:
        return name, exc.message
    except TimeoutError:
        return name, f"no answer within {timeout:g}s"


async def readiness(ctx: AppContext, timeout: float = PROBE_TIMEOUT) -> tuple[bool, dict[str, str]]:
    """``(ready, {check: "ok" | reason})`` for ``ctx``."""
    probes: dict[str, Probe] = {"state": ctx.composer.state.ping}
    for name, storage in ctx.composer.storages.items():
        probes[f"storage.{name}"] = storage.ping
    probes.update(ctx.probes)
    results = await asyncio.gather(*(_run(name, probe, timeout) for name, probe in probes.items()))
    checks: dict[str, str] = {}
    ready = True
    if ctx.lifecycle.draining:
        checks["lifecycle"] = "draining"
        ready = False
    for name, reason in results:
        checks[name] = "ok" if reason is None else reason
        ready = ready and reason is None
    return ready, checks


def redis_probe(client: Any) -> Probe:
    """A probe that PINGs the shared ``redis.asyncio`` client (``redis`` is
    imported here, only when a client exists)."""
    from redis.exceptions import RedisError

    async def ping() -> None:
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            raise errors.BackendError(f"redis unreachable: {exc}") from exc

    return ping
