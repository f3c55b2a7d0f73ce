"""Fixtures of the interop tests (real clients against a real server process).

* ``live_server`` (session): ``python -m tusd_py serve`` on a free loopback
  port with a temporary data dir, started with ``live_server_args``.
* ``client_headers`` (session): headers every client sends with every request
  (``{}`` while the interop server runs with ``--no-auth``; the auth change
  puts ``Authorization: Bearer ...`` here and the matching serve arguments in
  ``live_server_args``).
* ``no_server_errors`` (autouse): fails a test during which the server logged
  a 5xx answer or an error line.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.live import LiveServer, server_errors, start_server, stop_server


@pytest.fixture(scope="session")
def live_server_args() -> list[str]:
    """Extra ``serve`` arguments of the interop server."""
    return ["--no-auth"]


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
def client_headers() -> dict[str, str]:
    """Headers every interop client sends with every request."""
    return {}


@pytest.fixture(autouse=True)
def no_server_errors(live_server: LiveServer) -> Iterator[None]:
    start = live_server.log_size()
    yield
    bad = server_errors(live_server.log_records(start))
    assert not bad, f"the server logged errors during this test: {bad}"
