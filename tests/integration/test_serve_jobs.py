"""``tusd-py serve`` runs job consumers in-process by default: a CSV upload is
indexed with no separate worker, and SIGTERM stops the consumer cleanly."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from tests.integration import tushttp
from tests.integration.procs import ServerProcess, server_errors


def test_serve_indexes_with_its_in_process_consumer_and_stops_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", tmp_path / "server.log", {}).start()
    try:
        body = b"city,people\n" + b"".join(b"c%d,%d\n" % (i, i * 10) for i in range(300))
        meta = ",".join(f"{k} {base64.b64encode(v).decode()}" for k, v in (("filetype", b"text/csv"),))
        res = tushttp.request(
            "POST",
            server.files_url,
            {"Upload-Length": str(len(body)), "Upload-Metadata": meta, **tushttp.PATCH_TYPE},
            body,
        )
        assert res.status == 201, res
        file_id = str(res.header("Location")).rsplit("/", 1)[-1]
        deadline = time.monotonic() + 30
        while (doc := json.loads(tushttp.get(f"{server.base_url}/index-status/{file_id}").body))[
            "state"
        ] != "ready":
            assert time.monotonic() < deadline, doc
            time.sleep(0.05)
        assert doc["jobs"][0]["result"]["rows"] == 300
        page = json.loads(tushttp.get(f"{server.files_url}{file_id}/rows").body)
        assert page["total"] == 300 and page["rows"][:2] == [
            {"city": "c0", "people": 0},
            {"city": "c1", "people": 10},
        ]
    finally:
        code = server.stop()
    assert code == 0
    assert server_errors(server.log_path) == []
    assert '"event": "JobConsumerStarted"' in server.log_path.read_text()
