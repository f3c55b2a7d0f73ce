"""Process wiring: build the dependencies from a :class:`Config`, listen,
sweep expired uploads, and drain on SIGTERM.

Shutdown order on SIGTERM/SIGINT (see :meth:`RunningServer.drain_and_close`):
tell systemd ``STOPPING=1``; mark the lifecycle as draining — new uploads
(POST, PATCH) get 503 ``ERR_SERVER_SHUTDOWN`` with ``Retry-After`` and
``/readyz`` turns 503, while the listener stays open so clients and load
balancers get that explicit answer rather than a refused connection; give
in-flight bodies ``drain_timeout`` seconds (a second signal ends the wait);
cut the rest (their bytes are saved); stop listening; wait for the saves;
close the backends (state flushed); exit 0.

Under systemd (``Type=notify``) the process sends ``READY=1`` once it
listens and ``WATCHDOG=1`` every ``WatchdogSec/2``; it serves sockets passed
by socket activation (``LISTEN_FDS``) instead of binding its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, field

import tornado.httpserver
import tornado.netutil
import tornado.web

from handlers.app import make_app
from handlers.httpconn import HEADER_READ_CAP, TusHTTPServer
from handlers.zerocopy import MIN_BODY
from storage import build_storages
from tusd_py.auth.authenticator import Authenticator, build_authenticator
from tusd_py.auth.links import LinkSigner
from tusd_py.core import errors
from tusd_py.core.composer import Composer
from tusd_py.core.config import Config
from tusd_py.core.events import EventSink, LogEventSink, MultiSink
from tusd_py.core.inspect import build_inspector
from tusd_py.core.service import UploadService
from tusd_py.events.hooks.pre_create import PreCreateHook
from tusd_py.events.live import LiveEventSink, build_live
from tusd_py.events.live.sink import LiveJobListener
from tusd_py.jobs.store import JobStore
from tusd_py.jobs.system import NOTIFIED_KINDS, JobsSink, JobSystem
from tusd_py.locking import build_locker
from tusd_py.ops.context import AppContext
from tusd_py.ops.health import redis_probe
from tusd_py.ops.lifecycle import Lifecycle
from tusd_py.ops.metrics import Metrics, MetricsEventSink
from tusd_py.ops.reconcile import reconcile as reconcile_pass
from tusd_py.ops.sdlisten import inherited_sockets
from tusd_py.ops.sdnotify import Notifier, keep_alive, watchdog_interval
from tusd_py.state import build_state
from tusd_py.state.redis_conn import open_redis
from tusd_py.throttle import build_guard
from tusd_py.throttle.base import tier_size_limit

log = logging.getLogger("tusd_py.app")

#: On shutdown, how long cut uploads get to save their bytes (seconds).
CUT_SAVE_TIMEOUT = 10.0


async def build_context(
    config: Config,
    *,
    authenticator: Authenticator | None = None,
    events: Sequence[EventSink] = (),
    clock: Callable[[], float] = time.time,
    job_store: JobStore | None = None,
) -> AppContext:
    """Open the backends named by ``config`` and assemble an :class:`AppContext`
    (``job_store``: another job store than the one ``config`` names).

    Each concern has its own builder (state, locking, storage, auth, guard,
    inspection); this function only wires them together.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True)
    redis = open_redis(config)
    state = await build_state(config, redis)
    locker = build_locker(config, redis)
    storages, policy = build_storages(config, ledger=state)  # the state store keeps the S3 parts ledger
    composer = Composer(storages=storages, state=state, locker=locker, policy=policy)
    metrics = Metrics()
    live = build_live(config, redis)  # live events (tusd_py/live)
    jobs = JobSystem(config, composer, clock=clock, store=job_store)
    jobs.register_metrics(metrics.registry)
    sink: EventSink = MultiSink(
        [LogEventSink(), MetricsEventSink(metrics), LiveEventSink(live), JobsSink(jobs), *events]
    )
    service = UploadService(
        config=config,
        composer=composer,
        events=sink,
        clock=clock,
        size_limit=tier_size_limit(config),
        inspector=build_inspector(config),
    )
    if config.hooks.pre_create_url:
        service.pre_create = PreCreateHook(config.hooks, clock).check
    ctx = AppContext(
        config=config,
        service=service,
        composer=composer,
        authenticator=authenticator or build_authenticator(config),
        guard=build_guard(config, redis, clock=clock),
        metrics=metrics,
        links=LinkSigner.from_config(config, clock),
        live=live,
        jobs=jobs,
    )
    await live.start()  # live events: closed before the Redis client
    ctx.closers.append(live.aclose)
    jobs.bind(asyncio.get_running_loop())
    jobs.add_listener(LiveJobListener(live, NOTIFIED_KINDS))  # job states on /events
    ctx.closers.append(jobs.aclose)
    if redis is not None:
        ctx.closers.append(redis.aclose)
        ctx.probes["redis"] = redis_probe(redis)
    return ctx


async def reconcile(ctx: AppContext, batch: int = 500) -> int:
    """Startup check (see :mod:`tusd_py.ops.reconcile`). Returns offsets corrected."""
    return (await reconcile_pass(ctx, batch)).corrected


def http_server(app: tornado.web.Application, config: Config) -> tornado.httpserver.HTTPServer:
    """An HTTPServer tuned for streaming uploads that drains refused bodies
    (up to ``server.refusal_drain`` bytes, see :mod:`handlers.httpconn`)."""
    s = config.server
    return TusHTTPServer(
        app,
        drain_limit=s.refusal_drain,
        drain_idle_timeout=s.network_timeout,
        splice_min=MIN_BODY if s.zero_copy else 0,
        max_body_size=1 << 50,
        max_buffer_size=max(64 << 20, 4 * s.read_size),
        chunk_size=s.read_size,
        idle_connection_timeout=s.network_timeout,
        # TusApplication answers 431 up to here, Tornado drops the rest.
        max_header_size=max(2 * s.max_header_size, HEADER_READ_CAP),
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

    async def drain_and_close(self) -> int:
        """Graceful shutdown (see module docstring). Returns how many uploads were cut."""
        lifecycle = self.ctx.lifecycle
        lifecycle.draining = True
        drain_timeout = self.ctx.config.server.drain_timeout
        log.info(
            "draining %d uploads for up to %gs",
            lifecycle.active_streams,
            drain_timeout,
            extra={"event": "ServerDraining", "active_streams": lifecycle.active_streams},
        )
        cut = 0
        if not await lifecycle.wait_idle(drain_timeout):
            cut = lifecycle.cut_all(errors.ServerShutdown.code)
            log.info("drain timeout: cut %d uploads", cut, extra={"event": "ServerDrainTimeout", "cut": cut})
        # A cut stream ends once its bytes are saved; a spliced body is cut only
        # after its running splice step (handlers.zerocopy), so wait for the ends.
        await lifecycle.wait_idle(CUT_SAVE_TIMEOUT)
        self.http.stop()
        await lifecycle.join_tasks(timeout=10)
        if self.ctx.jobs is not None:
            await self.ctx.jobs.stop_consumer(drain_timeout)
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.http.close_all_connections()
        await self.ctx.aclose()
        return cut


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
    if ctx.jobs is not None:
        ctx.jobs.start_consumer(config.jobs.workers)
    return running


async def run(
    config: Config,
    *,
    announce: Callable[[RunningServer], None] | None = None,
    environ: MutableMapping[str, str] | None = None,
    sockets: list[socket.socket] | None = None,
    do_reconcile: bool = True,
) -> int:
    """Serve until SIGTERM/SIGINT, then drain. Returns the exit code.

    ``environ`` (default ``os.environ``) supplies the systemd variables
    ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``LISTEN_FDS``. ``sockets`` are
    pre-bound listening sockets (``--workers``, see :mod:`tusd_py.cli.workers`);
    by default inherited (socket activation) or the configured host/port.
    """
    env = os.environ if environ is None else environ
    notifier = Notifier.from_env(env)
    stop = asyncio.Event()
    lifecycles: list[Lifecycle] = []

    def on_signal() -> None:
        if stop.is_set():  # a second signal: stop waiting for uploads
            for lifecycle in lifecycles:
                lifecycle.cut_all(errors.ServerShutdown.code)
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        ctx = await build_context(config)
        lifecycles.append(ctx.lifecycle)
        running = await start(ctx, sockets or inherited_sockets(env), do_reconcile=do_reconcile)
        watchdog = watchdog_interval(env)
        pinger = asyncio.create_task(keep_alive(notifier, watchdog)) if watchdog else None
        if announce is not None:
            announce(running)
        notifier.ready(f"listening on port {running.port}")
        log.info("listening", extra={"event": "ServerReady", "port": running.port})
        await stop.wait()
        notifier.stopping(f"draining {ctx.lifecycle.active_streams} uploads")
        log.info("shutting down", extra={"event": "ServerStopping"})
        cut = await running.drain_and_close()
        log.info("stopped", extra={"event": "ServerStopped", "cut": cut})
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        notifier.close()
    return 0
