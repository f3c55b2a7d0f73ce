"""``serve --workers N``: N server processes sharing one port.

The parent reserves the port (a bound, never-listening ``SO_REUSEPORT``
socket, so port 0 resolves once and nobody else takes it), then forks N
workers before any event loop or client exists. Each worker binds its own
listening socket on that port with ``SO_REUSEPORT``: the kernel spreads new
connections evenly over the workers (a shared accept queue would let one
busy worker's accept loop grab a whole burst). Each worker is a complete
server (:func:`tusd_py.cli.server.run`); only worker 0 runs startup
reconciliation (it uses try-locks, so it never disturbs its siblings).

The parent announces the URL once every worker listens, forwards SIGTERM /
SIGINT to the workers (each drains gracefully) and exits 0 when all exited
cleanly. A worker that dies unexpectedly is restarted (at most
``MAX_RESTARTS`` within ``RESTART_WINDOW`` seconds, then everything stops).

Workers share uploads through the state store and the locker: with
``[redis] url`` through Redis; without it through the SQLite file (WAL mode
is safe for several processes) and host-local ``flock`` locks with release
requests over UNIX datagrams (:mod:`tusd_py.locking.file`), since in-process
locks cannot keep two processes from appending to one upload.

``/metrics`` covers every worker: :func:`serve_workers` creates a fresh
directory for prometheus-client's multiprocess mode, names it in
``PROMETHEUS_MULTIPROC_DIR`` before forking (workers inherit it; see
:mod:`tusd_py.ops.metrics`), marks each exited worker dead there (its live
gauges leave the sums, its counters stay) and removes the directory and the
variable when the run ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import tornado.netutil

from tusd_py.cli.eventloop import run_on_loop
from tusd_py.core.config import Config
from tusd_py.ops.metrics import MULTIPROC_ENV, mark_process_dead
from tusd_py.ops.sdnotify import Notifier, watchdog_interval

log = logging.getLogger("tusd_py.app")

MAX_RESTARTS = 5
RESTART_WINDOW = 60.0


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """Bind (without listening) a ``SO_REUSEPORT`` socket; returns it and its port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


class _WorkerTag(logging.Filter):
    """Adds ``worker`` (index) and ``pid`` to every log record of a worker."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.pid = os.getpid()

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        record.worker_pid = self.pid
        return True


def _worker_main(config: Config, index: int, ready_fd: int | None) -> int:
    """Body of one worker process; returns its exit code."""
    from tusd_py.cli.server import RunningServer, run
    from tusd_py.ops.heap import Trimmer
    from tusd_py.ops.logs import configure_logging

    # fork() copies no threads: the child needs its own log-writing thread.
    pipeline = configure_logging(level=logging.getLevelName(logging.getLogger().level))
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerTag(index))
    sockets = tornado.netutil.bind_sockets(config.server.port, address=config.server.host, reuse_port=True)

    def ready(running: RunningServer) -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"1")
            os.close(ready_fd)

    # systemd talks to the parent only (NotifyAccess=main); workers get no
    # notify socket, watchdog or inherited sockets.
    environ = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARS}
    try:
        with Trimmer():
            return run_on_loop(
                config, run(config, announce=ready, sockets=sockets, do_reconcile=index == 0, environ=environ)
            )
    finally:
        pipeline.stop()


_SYSTEMD_VARS = frozenset(
    {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}
)


class Supervisor:
    """Forks, watches and stops the workers (parent process only)."""

    def __init__(self, config: Config, reserved: socket.socket, metrics_dir: str | None = None) -> None:
        self.config = config
        self.reserved = reserved
        #: prometheus-client's multiprocess directory (None: not in use).
        self.metrics_dir = metrics_dir
        self.workers: dict[int, int] = {}  # pid -> index
        self.stopping = False
        self.failed = False
        self._restarts: list[float] = []
        self.notifier = Notifier.from_env(os.environ)
        self._watchdog = watchdog_interval(os.environ)
        self._next_ping = 0.0

    def spawn(self, index: int, ready: tuple[int, int] | None) -> int:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                self.reserved.close()
                ready_fd = None
                if ready is not None:
                    os.close(ready[0])
                    ready_fd = ready[1]
                code = _worker_main(self.config, index, ready_fd)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.workers[pid] = index
        return pid

    def _forward(self, signum: int, frame: object) -> None:
        if not self.stopping:
            self.notifier.stopping("stopping workers")
        self.stopping = True
        for pid in list(self.workers):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _wait_ready(self, read_fd: int, count: int) -> bool:
        """Wait until every worker listens (worker 0 reconciles first, which
        may take long with many uploads); False if one dies or we are stopped."""
        got = 0
        while got < count and not self.stopping:
            readable, _, _ = select.select([read_fd], [], [], 0.2)
            if readable:
                got += len(os.read(read_fd, count))
            pid, _status = os.waitpid(-1, os.WNOHANG)
            if pid:
                self._exited(pid)
                return False
        return got >= count

    def _reap(self) -> None:
        """Wait for workers until all are gone; restart unexpected deaths."""
        for _ in range(10_000_000):  # ends when no worker is left
            if not self.workers:
                return
            self._ping()
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                time.sleep(0.2)
                continue
            index = self._exited(pid)
            if index is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                if code != 0:
                    self.failed = True
                continue
            log.error("worker %d (pid %d) exited with %d; restarting it", index, pid, code)
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < RESTART_WINDOW] + [now]
            if len(self._restarts) > MAX_RESTARTS:
                log.error("workers keep dying; stopping")
                self.failed = True
                self._forward(signal.SIGTERM, None)
                continue
            self.spawn(index, None)

    def _exited(self, pid: int) -> int | None:
        """Forget the reaped process ``pid``; its worker index (None: not a worker)."""
        index = self.workers.pop(pid, None)
        if index is not None and self.metrics_dir is not None:
            mark_process_dead(pid, self.metrics_dir)
        return index

    def _ping(self) -> None:
        """systemd watchdog keep-alive from the parent (when configured)."""
        if self._watchdog is None:
            return
        now = time.monotonic()
        if now >= self._next_ping:
            self._next_ping = now + self._watchdog
            self.notifier.watchdog()

    def run(self, announce: Callable[[int], None]) -> int:
        read_fd, write_fd = os.pipe()
        try:
            for index in range(self.config.server.workers):
                self.spawn(index, (read_fd, write_fd))
        finally:
            os.close(write_fd)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._forward)
        try:
            if self._wait_ready(read_fd, self.config.server.workers):
                announce(self.config.server.workers)
                self.notifier.ready(f"{self.config.server.workers} workers listening")
            elif not self.stopping:
                log.error("workers did not start; stopping")
                self.failed = True
                self._forward(signal.SIGTERM, None)
        finally:
            os.close(read_fd)
        self._reap()
        self.reserved.close()
        self.notifier.close()
        return 1 if self.failed else 0


async def _prepare_sqlite(config: Config) -> None:
    from tusd_py.state.sqlite import SQLiteStateStore

    store = await SQLiteStateStore.open(config.sqlite_path)
    await store.close()


def prepare_shared_state(config: Config) -> None:
    """Create and migrate the SQLite file once, before forking: workers that
    open a new database at the same moment race for its switch to WAL mode
    ("database is locked"). Runs its own short event loop, which is closed
    (and its executor threads joined) before any fork."""
    if not config.redis.url:
        asyncio.run(_prepare_sqlite(config))


@contextmanager
def metrics_directory() -> Iterator[str]:
    """A fresh prometheus-client multiprocess directory, named in
    ``PROMETHEUS_MULTIPROC_DIR`` (inherited by workers forked meanwhile);
    removed, and the variable restored, at exit."""
    previous = os.environ.get(MULTIPROC_ENV)
    path = tempfile.mkdtemp(prefix="tusd-py-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)


def serve_workers(config: Config, announce: Callable[[Config, int], None]) -> int:
    """Run ``config.server.workers`` processes on one port until SIGTERM.

    ``announce(config, port)`` is called once all workers listen."""
    prepare_shared_state(config)
    reserved, port = reserve_port(config.server.host, config.server.port)
    config = dataclasses.replace(config, server=dataclasses.replace(config.server, port=port))
    with metrics_directory() as metrics_dir:
        supervisor = Supervisor(config, reserved, metrics_dir)
        return supervisor.run(lambda _n: announce(config, port))
