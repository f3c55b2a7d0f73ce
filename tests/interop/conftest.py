"""Fixtures of the interop tests (real clients against a real server process).

* ``live_server`` (session): ``python -m tusd_py serve`` on a free loopback
  port with a temporary data dir, started with ``live_server_args``.
* ``client_headers`` (session): headers every client sends with every request:
  ``Authorization: Bearer`` with a premium-tier token minted by ``tusd-py token``
  from the secret the server generated (auth is on, as by default).
* ``live_s3_server`` (module): the same with uploads above 12 MiB relayed to a
  fresh bucket on the real S3 endpoint (moto), in 5 MiB parts.
* ``no_server_errors`` (autouse): fails a test during which the server logged
  a 5xx answer or an error line.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration import s3_support as s3t
from tests.interop.live import LiveServer, mint_token, server_errors, start_server, stop_server


@pytest.fixture(scope="session")
def live_server_args() -> list[str]:
    """Extra ``serve`` arguments of the interop server (none: auth on, defaults)."""
    return []


@pytest.fixture(scope="session")
def live_server(
    tmp_path_factory: pytest.TempPathFactory, live_server_args: list[str]
) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("interop-server"), live_server_args)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def client_headers(live_server: LiveServer) -> dict[str, str]:
    """Headers every interop client sends with every request (a premium token:
    the suite creates more uploads per minute than the basic tier allows)."""
    return {"Authorization": f"Bearer {mint_token(live_server, 'interop', 'premium')}"}


@pytest.fixture(scope="module")
def s3_bucket(s3_endpoint: str) -> str:
    """A fresh bucket for the S3-routed interop uploads."""
    return s3t.new_bucket(s3_endpoint)


@pytest.fixture(scope="module")
def live_s3_server(
    tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, s3_bucket: str
) -> Iterator[LiveServer]:
    """``serve`` (auth on) relaying uploads above 12 MiB to ``s3_bucket``."""
    env = s3t.env_for(s3t.overrides(s3_endpoint, s3_bucket))
    server = start_server(tmp_path_factory.mktemp("interop-s3-server"), [], env)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(autouse=True)
def no_server_errors(live_server: LiveServer) -> Iterator[None]:
    start = live_server.log_size()
    yield
    bad = server_errors(live_server.log_records(start))
    assert not bad, f"the server logged errors during this test: {bad}"
