"""Fixtures for client end-to-end tests: a live server subprocess and a private resume cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import serverproc
from tests.e2e.helpers import ServerProcess


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """The CLI's ``XDG_CACHE_HOME`` (resume store) for one test."""
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture
def server_args() -> list[str]:
    """Extra ``serve`` flags; override per module or with ``pytest.mark.parametrize``."""
    return []


@pytest.fixture
def server_auth() -> bool:
    """Serve with JWT auth on (override per module); off: ``--no-auth``."""
    return False


@pytest.fixture
def live_server(tmp_path: Path, server_args: list[str], server_auth: bool) -> Iterator[ServerProcess]:
    """``python -m tusd_py serve [--no-auth] --port 0 --data-dir D`` (real subprocess)."""
    data = tmp_path / "server-data"
    data.mkdir()
    server = ServerProcess(data, tmp_path / "server.log", server_args, auth=server_auth)
    try:
        yield server
    finally:
        server.stop()
    errors = [r for r in server.log_records() if r.get("status") == 500 or r.get("level") == "error"]
    assert not errors, f"server logged errors: {errors[:3]}"


@pytest.fixture
def servers() -> Iterator[list[serverproc.ServerProcess]]:
    """``serve`` processes a test starts with :func:`tests.e2e.serverproc.start`; killed after it."""
    started: list[serverproc.ServerProcess] = []
    yield started
    for server in started:
        server.kill()
