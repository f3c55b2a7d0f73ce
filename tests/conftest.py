"""Shared fixtures.

* ``redis_url`` / ``s3_endpoint`` (session): real services, see ``tests/services.py``;
  ``bucket``: a fresh bucket on ``s3_endpoint`` for one test.
* ``tus_config``: a :class:`Config` on a temporary data dir (auth off, fast
  progress publishing); tweak with the ``config_overrides`` fixture.
* ``ctx`` / ``app`` / ``http_server`` / ``base_url``: the application on a
  loopback port with the production HTTP server settings (pytest-tornado's
  ``http_client`` and ``gen_test`` work on top).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.httpserver
import tornado.ioloop
import tornado.testing
import tornado.web

from handlers.app import make_app
from tests import services
from tests.integration.procs import RedisProcess
from tests.integration.s3_support import new_bucket
from tusd_py.cli.server import build_context
from tusd_py.cli.server import http_server as make_http_server
from tusd_py.core.config import Config, load_config
from tusd_py.ops.context import AppContext


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    given = services.env_or_none("TUSD_PY_TEST_REDIS_URL")
    if given:
        yield given
        return
    with services.redis_server() as url:
        yield url


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test alone: it may pause, kill or restart it
    (``redis_url`` is shared by the whole session)."""
    proc = RedisProcess(tmp_path / "redis")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    given = services.env_or_none("TUSD_PY_TEST_S3_ENDPOINT")
    if given:
        yield given
        return
    with services.moto_server() as url:
        yield url


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket (so ListMultipartUploads sees only this test's uploads)."""
    return new_bucket(s3_endpoint)


@pytest.fixture
def io_loop() -> Iterator[tornado.ioloop.IOLoop]:
    """A fresh IOLoop per test, as pytest-tornado's, minus its leak.

    Tornado's ``make_current`` remembers ``asyncio.get_event_loop()``, which
    creates a loop when none is set, and restores that unclosed loop
    afterwards; a later ``asyncio.run`` then replaces it and the suite fails
    on "unclosed event loop". Unsetting the loop first makes it remember None.
    """
    asyncio.set_event_loop(None)
    loop = tornado.ioloop.IOLoop()
    loop.make_current()
    yield loop
    loop.clear_current()
    loop.close(all_fds=True)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module to change ``tus_config``."""
    return {}


@pytest.fixture
def data_dir(tmp_path: Any) -> Any:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def tus_config(data_dir: Any, config_overrides: dict[str, Any]) -> Config:
    overrides: dict[str, Any] = {
        "server.data_dir": str(data_dir),
        "auth.enabled": False,
        "server.progress_interval": 0.05,
        "server.read_size": 64 * 1024,
    }
    overrides.update(config_overrides)
    return load_config(environ={}, overrides=overrides)


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    context = io_loop.run_sync(lambda: build_context(tus_config))
    yield context
    io_loop.run_sync(lambda: context.lifecycle.join_tasks(10.0))
    io_loop.run_sync(context.aclose)


@pytest.fixture
def app(ctx: AppContext) -> tornado.web.Application:
    return make_app(ctx)


@pytest.fixture
def _unused_port() -> Any:
    return tornado.testing.bind_unused_port("127.0.0.1")


@pytest.fixture
def http_server(
    request: pytest.FixtureRequest,
    io_loop: tornado.ioloop.IOLoop,
    _unused_port: Any,
    app: tornado.web.Application,
    tus_config: Config,
) -> Iterator[tornado.httpserver.HTTPServer]:
    server = make_http_server(app, tus_config)
    server.add_socket(_unused_port[0])
    yield server
    server.stop()
    with contextlib.suppress(Exception):
        io_loop.run_sync(server.close_all_connections, timeout=10)


@pytest.fixture
def base_url(http_server: tornado.httpserver.HTTPServer, http_port: int) -> str:
    return f"http://127.0.0.1:{http_port}"
