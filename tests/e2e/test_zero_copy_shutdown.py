"""SIGTERM on a real process while a large PATCH body is being spliced
(:mod:`tusd_py.zerocopy`): a body complete during the drain is answered 204 on
a connection that stays usable; one still open after ``drain_timeout`` is cut
with 503 and exactly the bytes received are kept (seen after a restart)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.e2e.serverproc import RawPatch, ServerProcess, start

MIB = 1 << 20


def test_spliced_body_cut_on_drain_timeout_keeps_its_bytes(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    data = os.urandom(8 * MIB)
    sent = 3 * MIB + 17
    server = start(servers, tmp_path / "data", "--drain-timeout", "0.5")
    path = server.create(len(data))
    patch = RawPatch(server.port, path, 0, len(data))
    patch.send(data[:sent])
    server.wait_metric("tusd_py_bytes_received_total", sent)
    server.signal(signal.SIGTERM)
    answer = patch.wait_closed()
    patch.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer[:200]
    assert json.loads(body)["error"]["code"] == "ERR_SERVER_SHUTDOWN"
    assert server.wait() == 0
    again = start(servers, tmp_path / "data")
    assert again.offset(path) == sent
    status, _, _ = again.patch(path, sent, data[sent:])
    assert status == 204
    status, _, got = again.request("GET", path)
    assert status == 200 and got == data


def test_spliced_body_finishing_during_drain_is_answered(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    data = os.urandom(4 * MIB)
    server = start(servers, tmp_path / "data", "--drain-timeout", "30")
    path = server.create(len(data))
    patch = RawPatch(server.port, path, 0, len(data))
    patch.send(data[: 2 * MIB])
    server.wait_metric("tusd_py_bytes_received_total", 2 * MIB)
    server.signal(signal.SIGTERM)
    server.wait_log(lambda r: r.get("event") == "ServerDraining")
    patch.send(data[2 * MIB :])
    status, headers = patch.response()
    patch.close()
    assert status == 204 and headers["upload-offset"] == str(len(data))
    assert server.wait() == 0
    again = start(servers, tmp_path / "data")
    status, _, got = again.request("GET", path)
    assert status == 200 and got == data
