"""Fixtures of the HTTP protocol suite.

* ``tus``: a :class:`tests.tusclient.Tus` against the server under test.
* ``port``: the server's loopback port (raw-socket tests).
* ``stored``: what the server holds (upload ids in the state store, files on disk)
  to check that a refused request wrote nothing.
* An autouse guard fails any test whose server logged an error or answered a
  500 ``ERR_INTERNAL``: "a 500 in a test log is a bug" (HELPERS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.http.raw import RawConnection
from tests.tusclient import Tus
from tusd_py.ops.context import AppContext


@pytest.fixture
def tus(http_client: AsyncHTTPClient, base_url: str) -> Tus:
    return Tus(http_client, base_url)


@pytest.fixture
def port(http_port: int, http_server: object) -> int:
    return http_port


Connect = Callable[[], Awaitable[RawConnection]]


@pytest.fixture
def connect(io_loop: tornado.ioloop.IOLoop, port: int) -> Iterator[Connect]:
    """Opens raw connections to the server; all are closed at teardown."""
    opened: list[RawConnection] = []

    async def open_one() -> RawConnection:
        conn = await RawConnection.open(port)
        opened.append(conn)
        return conn

    yield open_one

    async def close_all() -> None:
        for conn in opened:
            await conn.aclose()

    io_loop.run_sync(close_all, timeout=10)


@dataclass
class Stored:
    """The server's persistent view, for "nothing was written" assertions."""

    ctx: AppContext
    data_dir: Path

    async def ids(self) -> list[str]:
        return list(await self.ctx.composer.state.list_ids("", 10_000))

    def files(self) -> list[str]:
        root = self.data_dir / "uploads"
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []

    def staged(self) -> list[str]:
        root = self.data_dir / "staging"
        return sorted(p.name for p in root.iterdir()) if root.is_dir() else []

    def content(self, upload_id: str) -> bytes:
        return (self.data_dir / "uploads" / upload_id).read_bytes()


@pytest.fixture
def stored(ctx: AppContext, data_dir: Path) -> Stored:
    return Stored(ctx, data_dir)


_WATCHED = ("tornado", "tusd_py")


def server_errors(records: list[logging.LogRecord]) -> list[str]:
    """ERROR logs of the server and 500 ERR_INTERNAL answers among ``records``."""
    bad = []
    for record in records:
        if not record.name.startswith(_WATCHED):
            continue
        if record.levelno >= logging.ERROR:
            bad.append(f"{record.name}: {record.getMessage()}")
        elif record.name == "tusd_py.access" and getattr(record, "status", 0) >= 500:
            if getattr(record, "code", None) in (None, "ERR_INTERNAL", "ERR_HTTP"):
                bad.append(f"500 answered: {record.getMessage()}")
    return bad


@pytest.fixture(autouse=True)
def no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if the server logged an ERROR or answered 500 ERR_INTERNAL."""
    caplog.set_level(logging.INFO, logger="tusd_py.access")
    yield
    bad = server_errors(caplog.get_records("call") + caplog.get_records("teardown"))
    assert not bad, "server errors during the test:\n" + "\n".join(bad)


def upload_id_of(url: str) -> str:
    """The id at the end of an upload URL."""
    return url.rstrip("/").rsplit("/", 1)[-1]
