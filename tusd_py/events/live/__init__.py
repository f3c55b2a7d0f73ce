"""Live events: ``/events`` (WebSocket) and SSE on ``/index-status/{id}``.

:class:`LiveHub` fans events out inside one process (publish API in
:mod:`tusd_py.events.live.hub`); :class:`RedisBridge` carries them between instances
when ``[redis] url`` is set; :class:`LiveEventSink` feeds the hub from the
upload service.

:mod:`tusd_py.events.live.bridge` (and with it ``redis``) is imported only
when a bridge is built or ``RedisBridge`` is asked for: without Redis
configured this package needs none of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tusd_py.core.config import Config
from tusd_py.events.live.hub import PROGRESS_INTERVAL, LiveHub, Subscription
from tusd_py.events.live.sink import LiveEventSink

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["PROGRESS_INTERVAL", "LiveEventSink", "LiveHub", "RedisBridge", "Subscription", "build_live"]


def build_live(config: Config, redis: aioredis.Redis | None) -> LiveHub:
    """The hub of this process, bridged through Redis when it is configured
    (call :meth:`LiveHub.start` on the running loop)."""
    if redis is None:
        return LiveHub()
    from tusd_py.events.live.bridge import RedisBridge

    return LiveHub(outbound=RedisBridge(redis, f"{config.redis.prefix}live"))


def __getattr__(name: str) -> Any:
    """``RedisBridge``, imported on first use (see module docstring)."""
    if name == "RedisBridge":
        from tusd_py.events.live.bridge import RedisBridge

        return RedisBridge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
