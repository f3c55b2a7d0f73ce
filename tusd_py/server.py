"""Process wiring: build the dependencies from a :class:`Config`, listen,
sweep expired uploads, and drain on SIGTERM.

Shutdown order on SIGTERM/SIGINT: stop accepting connections, mark the
lifecycle as draining (new uploads get 503), give in-flight bodies
``drain_timeout`` seconds, cut the rest (their bytes are saved), wait for the
saves, close the backends, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import tornado.httpserver
import tornado.netutil
import tornado.web

from storage import build_storages
from storage.base import OrphanSweeper
from tusd_py import errors
from tusd_py.app import make_app
from tusd_py.auth import Authenticator, build_authenticator
from tusd_py.checksum import clear_staging
from tusd_py.composer import Composer
from tusd_py.config import Config
from tusd_py.context import AppContext
from tusd_py.events import EventSink, LogEventSink, MultiSink
from tusd_py.guard import build_guard, tier_size_limit
from tusd_py.inspect import build_inspector
from tusd_py.locking import build_locker
from tusd_py.redis_conn import open_redis
from tusd_py.service import UploadService
from tusd_py.state import build_state

log = logging.getLogger("tusd_py.app")


async def build_context(
    config: Config,
    *,
    authenticator: Authenticator | None = None,
    events: Sequence[EventSink] = (),
    clock: Callable[[], float] = time.time,
) -> AppContext:
    """Open the backends named by ``config`` and assemble an :class:`AppContext`.

    Each concern has its own builder (state, locking, storage, auth, guard,
    inspection); this function only wires them together.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    redis = open_redis(config)
    state = await build_state(config, redis)
    locker = build_locker(config, redis)
    storages, policy = build_storages(config, state)
    composer = Composer(storages=storages, state=state, locker=locker, policy=policy)
    sink: EventSink = MultiSink([LogEventSink(), *events]) if events else LogEventSink()
    service = UploadService(
        config=config,
        composer=composer,
        events=sink,
        clock=clock,
        size_limit=tier_size_limit(config),
        inspector=build_inspector(config),
    )
    ctx = AppContext(
        config=config,
        service=service,
        composer=composer,
        authenticator=authenticator or build_authenticator(config),
        guard=build_guard(config, redis),
    )
    if redis is not None:
        ctx.closers.append(redis.aclose)
    return ctx


async def reconcile(ctx: AppContext, batch: int = 500) -> int:
    """Startup check: offsets follow what storage holds. Returns corrections."""
    config = ctx.config
    clear_staging(ctx.service.staging_dir, older_than=config.server.network_timeout * 2, now=time.time())
    state = ctx.composer.state
    fixed = 0
    after = ""
    for _ in range(1_000_000):
        ids = await state.list_ids(after, batch)
        if not ids:
            break
        for upload_id in ids:
            info = await state.get(upload_id)
            if info is None or info.is_complete or info.state.value != "uploading":
                continue
            try:
                held = await ctx.composer.storage(info.storage).durable_offset(info)
            except (errors.TusError, LookupError):
                continue
            if held != info.offset:
                log.warning(
                    "reconciled offset of %s from %d to %d",
                    upload_id,
                    info.offset,
                    held,
                    extra={"upload_id": upload_id, "offset": held},
                )
                await state.reset_offset(upload_id, held)
                fixed += 1
        after = ids[-1]
    for name, storage in ctx.composer.storages.items():
        if isinstance(storage, OrphanSweeper):
            try:
                swept = await storage.sweep_orphans()
            except errors.TusError as exc:
                log.warning("orphan sweep of storage %s failed: %s", name, exc.message)
            else:
                if swept:
                    log.info("aborted %d orphaned uploads in storage %s", swept, name)
    return fixed


def http_server(app: tornado.web.Application, config: Config) -> tornado.httpserver.HTTPServer:
    """An HTTPServer tuned for streaming uploads."""
    s = config.server
    return tornado.httpserver.HTTPServer(
        app,
        max_body_size=1 << 50,
        max_buffer_size=max(64 << 20, 4 * s.read_size),
        chunk_size=s.read_size,
        idle_connection_timeout=s.network_timeout,
        max_header_size=s.max_header_size,
        xheaders=False,
    )


@dataclass
class RunningServer:
    """A started server: its context, HTTP server and background tasks."""

    ctx: AppContext
    http: tornado.httpserver.HTTPServer
    sockets: list[socket.socket]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.sockets[0].getsockname()[1])

    async def drain_and_close(self) -> None:
        """Graceful shutdown (see module docstring)."""
        lifecycle = self.ctx.lifecycle
        lifecycle.draining = True
        self.http.stop()
        if not await lifecycle.wait_idle(self.ctx.config.server.drain_timeout):
            cut = lifecycle.cut_all("ERR_SERVER_SHUTDOWN")
            log.info("drain timeout: cut %d uploads", cut)
        await lifecycle.join_tasks(timeout=10)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.http.close_all_connections()
        await self.ctx.aclose()


async def _sweeper(ctx: AppContext) -> None:
    interval = ctx.config.server.sweep_interval
    while True:
        await asyncio.sleep(interval)
        try:
            await ctx.service.sweep_expired()
        except errors.TusError as exc:
            log.warning("expiry sweep failed: %s", exc.message)


async def start(
    ctx: AppContext, sockets: list[socket.socket] | None = None, *, do_reconcile: bool = True
) -> RunningServer:
    """Listen on ``sockets`` (or the configured host/port) and start the sweeper."""
    config = ctx.config
    if do_reconcile:
        await reconcile(ctx)
    if sockets is None:
        sockets = tornado.netutil.bind_sockets(config.server.port, address=config.server.host)
    app = make_app(ctx)
    server = http_server(app, config)
    server.add_sockets(sockets)
    running = RunningServer(ctx=ctx, http=server, sockets=sockets)
    running.tasks.append(asyncio.create_task(_sweeper(ctx)))
    return running


async def run(config: Config, *, announce: Callable[[RunningServer], None] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, then drain. Returns the exit code."""
    ctx = await build_context(config)
    running = await start(ctx)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if announce is not None:
        announce(running)
    await stop.wait()
    log.info("shutting down", extra={"event": "ServerStopping"})
    await running.drain_and_close()
    return 0
