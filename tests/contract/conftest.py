"""Fixtures parametrizing the contract suites over every implementation
listed in :mod:`tests.contract.backends`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tornado.ioloop

from tests.contract.backends import LOCKER_BACKENDS, STATE_BACKENDS, Env, LockerBackend, StateBackend
from tusd_py.state.base import StateStore


def _env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    return Env(tmp_path=tmp_path, redis_url=lambda: str(request.getfixturevalue("redis_url")))


@pytest.fixture(params=sorted(STATE_BACKENDS))
def state_backend(
    request: pytest.FixtureRequest, io_loop: tornado.ioloop.IOLoop, tmp_path: Path
) -> Iterator[StateBackend]:
    backend = STATE_BACKENDS[request.param](_env(request, tmp_path))
    yield backend
    io_loop.run_sync(backend.close)


@pytest.fixture
def store(io_loop: tornado.ioloop.IOLoop, state_backend: StateBackend) -> StateStore:
    return io_loop.run_sync(state_backend.open)


@pytest.fixture(params=sorted(LOCKER_BACKENDS))
def locker_backend(
    request: pytest.FixtureRequest, io_loop: tornado.ioloop.IOLoop, tmp_path: Path
) -> Iterator[LockerBackend]:
    backend = LOCKER_BACKENDS[request.param](_env(request, tmp_path))
    yield backend
    io_loop.run_sync(backend.close)
