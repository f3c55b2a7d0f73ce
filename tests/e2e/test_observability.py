"""A scripted sequence of uploads against a real process: ``/metrics`` values
match what happened, and every stderr line is JSON — one access line per
request with its fields, plus the lifecycle events."""

from __future__ import annotations

import collections
import signal
from pathlib import Path

from tests.e2e.serverproc import RawPatch, ServerProcess

TUS = {"Tus-Resumable": "1.0.0"}
ACCESS_FIELDS = {"request_id", "user", "upload_id", "method", "status", "bytes", "duration_ms", "path"}


def test_metrics_and_logs_follow_a_scripted_sequence(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        server.wait_listening()
        a = server.create(10, b"0123456789")  # creation-with-upload: finished
        b = server.create(20)
        assert server.patch(b, 0, b"x" * 8)[0] == 204
        assert server.patch(b, 0, b"y" * 8)[0] == 409  # wrong offset: body never read
        assert server.patch(b, 8, b"z" * 12)[0] == 204  # finished
        c = server.create(5)
        assert server.request("DELETE", c, TUS)[0] == 204  # terminated
        assert server.request("HEAD", "/files/0123456789abcdef0123456789abcdef", TUS)[0] == 404
        bad_type = {**TUS, "Upload-Offset": "0", "Content-Type": "text/plain"}
        assert server.request("PATCH", b, bad_type, b"nope")[0] == 415
        status, _, body = server.request("GET", a, {"X-Request-ID": "trace-42"})
        assert status == 200 and body == b"0123456789"
        e = server.create(100)
        gone = RawPatch(server.port, e, 0, 100)
        gone.send(b"e" * 30)
        server.wait_metric("tusd_py_bytes_received_total", 10 + 8 + 12 + 30)
        gone.close()  # the client vanishes mid-body: interrupted, 30 bytes kept
        server.wait_metric("tusd_py_uploads_interrupted_total", 1)
        assert server.offset(e) == 30

        metrics = server.metrics()
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.kill()

    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("tusd_py_uploads_created_total") == 4
    assert value("tusd_py_uploads_finished_total") == 2
    assert value("tusd_py_uploads_terminated_total") == 1
    assert value("tusd_py_uploads_interrupted_total") == 1
    assert value("tusd_py_uploads_failed_total") == 0
    assert value("tusd_py_bytes_received_total") == 60
    assert value("tusd_py_active_streams") == 0
    assert value("tusd_py_requests_total", method="PATCH", status="409") == 1
    assert value("tusd_py_requests_total", method="PATCH", status="415") == 1
    assert value("tusd_py_requests_total", method="PATCH", status="499") == 1
    assert value("tusd_py_requests_total", method="HEAD", status="404") == 1
    assert value("tusd_py_patch_duration_seconds_count") == 5
    assert not [key for key in metrics if key[0] == "tusd_py_throttled_requests_total"]

    # Every stderr line is a JSON object (ServerProcess.logs skips nothing here).
    assert all(line.startswith("{") for line in server.lines), server.lines
    logs = server.logs()
    access = [r for r in logs if r.get("logger") == "tusd_py.access"]
    assert access and all(ACCESS_FIELDS <= set(r) for r in access)
    assert all(r["request_id"] and isinstance(r["duration_ms"], float) for r in access)
    # The last access line is the final scrape, counted after its body was built.
    by_label = collections.Counter((r["method"], str(r["status"])) for r in access[:-1])
    for (method, status), count in by_label.items():
        assert value("tusd_py_requests_total", method=method, status=status) == count, (method, status)
    assert sum(r["bytes"] for r in access) == 60
    uploads = [r for r in access if r["path"].startswith("/files/")]
    assert all(r["user"] == "local" for r in uploads if r["status"] != 404)
    assert {r["upload_id"] for r in uploads if r["method"] != "HEAD"} == {
        p.rsplit("/", 1)[1] for p in (a, b, c, e)
    }
    assert [r["request_id"] for r in access if r["method"] == "GET" and r["path"] == a] == ["trace-42"]
    interrupted = [r for r in access if r["status"] == 499]
    assert [(r["code"], r["bytes"]) for r in interrupted] == [("ERR_CONNECTION_RESET", 30)]

    events = collections.Counter(
        r["event"] for r in logs if r.get("logger") == "tusd_py.app" and "event" in r
    )
    assert events["UploadCreated"] == 4
    assert events["UploadFinished"] == 2
    assert events["UploadTerminated"] == 1
    for record in logs:
        if record.get("event") in ("UploadCreated", "UploadFinished", "UploadTerminated"):
            assert record["upload_id"] and record["user"] == "local" and "length" in record
