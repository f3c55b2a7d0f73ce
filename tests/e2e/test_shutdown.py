"""SIGTERM while a PATCH streams: the drain of SPEC §9 on a real process.

* During the drain new uploads get 503 ``ERR_SERVER_SHUTDOWN`` (with
  Retry-After), ``/readyz`` is 503, reads still work, and the running PATCH
  may finish (204) — then the process exits 0 at once.
* A PATCH still open when ``drain_timeout`` ends is cut; its bytes are kept
  (HEAD after a restart shows them), the access log has a 499 line with
  ``ERR_SERVER_SHUTDOWN``, and the exit code is 0.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from tests.e2e.serverproc import RawPatch, ServerProcess, start

CHUNK = os.urandom(64 * 1024)
TUS = {"Tus-Resumable": "1.0.0"}


def test_patch_finishes_during_drain_and_new_uploads_get_503(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    data = tmp_path / "data"
    server = start(servers, data, "--drain-timeout", "30")
    path = server.create(2 * len(CHUNK))
    other = server.create(10)
    patch = RawPatch(server.port, path, 0, 2 * len(CHUNK))
    patch.send(CHUNK)
    server.wait_metric("tusd_py_bytes_received_total", len(CHUNK))
    server.wait_metric("tusd_py_active_streams", 1)

    server.signal(signal.SIGTERM)
    server.wait_log(lambda r: r.get("event") == "ServerDraining")

    status, headers, body = server.request("POST", "/files/", {**TUS, "Upload-Length": "5"})
    assert status == 503 and json.loads(body)["error"]["code"] == "ERR_SERVER_SHUTDOWN"
    assert int(headers["retry-after"]) >= 1
    status, _, body = server.patch(other, 0, b"0123456789")
    assert status == 503 and json.loads(body)["error"]["code"] == "ERR_SERVER_SHUTDOWN"
    status, _, body = server.request("GET", "/readyz")
    assert status == 503 and json.loads(body)["checks"]["lifecycle"] == "draining"
    assert server.request("GET", "/healthz")[0] == 200
    assert server.offset(other) == 0
    assert server.metrics()[("tusd_py_draining", ())] == 1

    patch.send(CHUNK)
    status, headers = patch.response()
    assert status == 204 and headers["upload-offset"] == str(2 * len(CHUNK))
    patch.close()
    assert server.wait() == 0
    stopped = server.wait_log(lambda r: r.get("event") == "ServerStopped")
    assert stopped["cut"] == 0

    again = start(servers, data)
    assert again.offset(path) == 2 * len(CHUNK)
    status, _, body = again.request("GET", path)
    assert status == 200 and body == CHUNK + CHUNK


def test_patch_open_past_drain_timeout_is_cut_with_its_bytes_kept(
    tmp_path: Path, servers: list[ServerProcess]
) -> None:
    drain = 1.0
    data = tmp_path / "data"
    server = start(servers, data, "--drain-timeout", str(drain))
    path = server.create(4 * len(CHUNK))
    patch = RawPatch(server.port, path, 0, 4 * len(CHUNK))
    patch.send(CHUNK)
    server.wait_metric("tusd_py_bytes_received_total", len(CHUNK))
    server.wait_metric("tusd_py_active_streams", 1)

    sent_at = time.monotonic()
    server.signal(signal.SIGTERM)
    answer = patch.wait_closed()
    held_for = time.monotonic() - sent_at
    patch.close()
    # cut: answered 503 ERR_SERVER_SHUTDOWN (if the client still listens), then closed
    assert answer.startswith(b"HTTP/1.1 503") and b"ERR_SERVER_SHUTDOWN" in answer
    assert held_for >= drain  # the PATCH was given the whole drain time
    assert server.wait() == 0

    logs = server.logs()
    assert [r["cut"] for r in logs if r.get("event") == "ServerDrainTimeout"] == [1]
    cut = [r for r in logs if r.get("event") == "Request" and r["method"] == "PATCH"]
    assert len(cut) == 1
    assert cut[0]["status"] == 503 and cut[0]["code"] == "ERR_SERVER_SHUTDOWN"
    assert cut[0]["bytes"] == len(CHUNK) and cut[0]["upload_id"] == path.rsplit("/", 1)[1]

    again = start(servers, data)
    assert again.offset(path) == len(CHUNK)
    status, _, _ = again.patch(path, len(CHUNK), CHUNK * 3)
    assert status == 204
    status, _, body = again.request("GET", path)
    assert status == 200 and body == CHUNK * 4


def test_second_signal_cuts_without_waiting(tmp_path: Path, servers: list[ServerProcess]) -> None:
    server = start(servers, tmp_path / "data", "--drain-timeout", "600")
    path = server.create(2 * len(CHUNK))
    patch = RawPatch(server.port, path, 0, 2 * len(CHUNK))
    patch.send(CHUNK)
    server.wait_metric("tusd_py_bytes_received_total", len(CHUNK))
    server.signal(signal.SIGTERM)
    server.wait_log(lambda r: r.get("event") == "ServerDraining")
    server.signal(signal.SIGINT)
    assert patch.wait_closed().startswith(b"HTTP/1.1 503")
    patch.close()
    assert server.wait() == 0
    again = start(servers, tmp_path / "data")
    assert again.offset(path) == len(CHUNK)
