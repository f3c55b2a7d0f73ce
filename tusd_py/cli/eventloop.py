"""``[server] event_loop``: which asyncio event loop a server process runs on.

* ``"asyncio"`` (the default): the standard library's loop.
* ``"uvloop"``: uvloop's libuv-based loop (``pip install tusd-py[fast]``);
  a :class:`~tusd_py.core.config.ConfigError` at start when it is not
  installed, never a silent fallback.
* ``"auto"``: uvloop when it can be imported, else asyncio.

The default stays ``"asyncio"`` until uvloop is measured to win on this
server's scenarios (``tests/bench/run_bench.py``; see RESULTS.md): an
unmeasured loop must not change the behaviour of existing deployments.

:func:`run_on_loop` is what ``serve`` (single process) and every ``--workers``
child use instead of :func:`asyncio.run`; each call makes a fresh loop (a
forked worker never reuses its parent's).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from tusd_py.core.config import Config, ConfigError

T = TypeVar("T")

#: Accepted values of ``[server] event_loop``.
EVENT_LOOPS = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _uvloop_factory() -> LoopFactory | None:
    """uvloop's ``new_event_loop``, None when uvloop is not installed."""
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: LoopFactory = module.new_event_loop
    return factory


def loop_factory(config: Config) -> LoopFactory | None:
    """The loop factory ``config`` selects (None: asyncio's default loop).

    Raises :class:`ConfigError` (key ``server.event_loop``) for an unknown
    value or for ``"uvloop"`` when uvloop is not installed.
    """
    choice = config.server.event_loop
    if choice not in EVENT_LOOPS:
        raise ConfigError("server.event_loop", f"must be one of {', '.join(EVENT_LOOPS)}, got {choice!r}")
    if choice == "asyncio":
        return None
    factory = _uvloop_factory()
    if factory is None and choice == "uvloop":
        raise ConfigError(
            "server.event_loop",
            "uvloop is not installed; install it (pip install 'tusd-py[fast]') "
            'or set event_loop = "asyncio" (or "auto" to use it only when present)',
        )
    return factory


def loop_name(config: Config) -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop ``config`` runs on (raises like :func:`loop_factory`)."""
    return "asyncio" if loop_factory(config) is None else "uvloop"


def run_on_loop(config: Config, main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh loop of the kind ``config`` selects.

    Like :func:`asyncio.run` (the loop is closed, async generators and the
    default executor are shut down); raises :class:`ConfigError` before
    starting anything when the loop cannot be had (``main`` is then closed).
    """
    try:
        factory = loop_factory(config)
    except ConfigError:
        main.close()
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
