"""``tusd-py worker``: job consumers alone, so processing scales apart from uploads.

It opens the same backends as ``serve`` (state store, storages; Redis when
``[redis] url`` is set) without listening, runs ``[jobs] workers`` consumer
threads (at least one) and, under systemd (``Type=notify``), reports
``READY=1`` once consuming. SIGTERM/SIGINT stop taking jobs and let running
ones finish (up to ``server.drain_timeout``); a job cut short (or a worker
killed with SIGKILL) runs again elsewhere after ``[jobs] visibility_timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal

from tusd_py.cli.args import Command, add_config_flags, config_from_args, run_async
from tusd_py.core.config import Config
from tusd_py.ops.sdnotify import Notifier

log = logging.getLogger("tusd_py.app")


async def run_worker(config: Config) -> int:
    """Consume jobs until SIGTERM/SIGINT. Returns the exit code."""
    # Imported here so that the other commands, which import this module for
    # the command table, do not load the backends (see tusd_py.cli.serve.serve).
    from storage import build_storages
    from tusd_py.core.composer import Composer
    from tusd_py.jobs.system import JobSystem
    from tusd_py.locking import build_locker
    from tusd_py.state import build_state
    from tusd_py.state.redis_conn import open_redis

    config.data_dir.mkdir(parents=True, exist_ok=True)
    notifier = Notifier.from_env(os.environ)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    redis = open_redis(config)
    state = await build_state(config, redis)
    storages, policy = build_storages(config, ledger=state)  # the state store keeps the S3 parts ledger
    composer = Composer(storages=storages, state=state, locker=build_locker(config, redis), policy=policy)
    system = JobSystem(config, composer)
    try:
        threads = max(1, config.jobs.workers)
        system.start_consumer(threads)
        notifier.ready(f"consuming jobs with {threads} threads")
        log.info("worker ready", extra={"event": "WorkerReady", "pid": os.getpid(), "threads": threads})
        await stop.wait()
        notifier.stopping("finishing running jobs")
        log.info("worker stopping", extra={"event": "WorkerStopping"})
        await system.stop_consumer(config.server.drain_timeout)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await system.aclose()
        await composer.close()
        if redis is not None:
            await redis.aclose()
        notifier.close()
    log.info("worker stopped", extra={"event": "WorkerStopped"})
    return 0


def _args(parser: argparse.ArgumentParser) -> None:
    add_config_flags(parser)


def _run(args: argparse.Namespace) -> int:
    from tusd_py.ops.logs import configure_logging

    config = config_from_args(args)
    pipeline = configure_logging()
    try:
        code: int = run_async(run_worker(config))
        return code
    finally:
        pipeline.stop()


COMMAND = Command(
    "worker", "run job consumers (index, sha256, webhooks) without serving uploads", _args, _run
)
