"""``tusd-py worker`` processes beside ``serve`` on a shared real Redis: a
worker killed with SIGKILL in the middle of an index job loses its lease; after
the visibility timeout another worker runs the job again, and the table holds
every row exactly once."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import tushttp
from tests.integration.procs import ROOT, ServerProcess, server_env, server_errors

ROWS = 200_000
DEADLINE = 60.0


class Worker:
    """One ``tusd-py worker`` subprocess; JSON logs in ``log_path``."""

    def __init__(self, data_dir: Path, log_path: Path, args: tuple[str, ...]) -> None:
        self.log_path = log_path
        cmd = [sys.executable, "-m", "tusd_py", "worker", "--data-dir", str(data_dir), *args]
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=log, env=server_env({}), cwd=ROOT
            )

    def wait_ready(self) -> None:
        tushttp.poll(
            lambda: b"WorkerReady" in self.log_path.read_bytes() or self.proc.poll() is not None, DEADLINE
        )
        assert self.proc.poll() is None, self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def stack(tmp_path: Path, redis_url: str) -> Iterator[tuple[ServerProcess, list[Worker], tuple[str, ...]]]:
    shared = ("--redis-url", redis_url, "--redis-prefix", f"kill-{uuid.uuid4().hex[:8]}:")
    server = ServerProcess(tmp_path / "data", tmp_path / "server.log", {}, (*shared, "--jobs-workers", "0"))
    server.start()
    workers: list[Worker] = []
    yield server, workers, (*shared, "--jobs-visibility-timeout", "1.5", "--jobs-workers", "1")
    for worker in workers:
        worker.stop()
    server.stop()


def status(server: ServerProcess, file_id: str) -> dict[str, object]:
    res = tushttp.get(f"{server.base_url}/index-status/{file_id}")
    assert res.status == 200, res.body
    return dict(json.loads(res.body))


def tmp_rows(db_path: Path, file_id: str) -> int:
    if not db_path.exists():
        return 0
    with sqlite3.connect(db_path, timeout=10) as db:
        try:
            return int(db.execute(f"SELECT count(*) FROM [_tmp_rows_{file_id}]").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_a_killed_worker_job_runs_again_and_rows_are_stored_once(
    tmp_path: Path, stack: tuple[ServerProcess, list[Worker], tuple[str, ...]]
) -> None:
    server, workers, args = stack
    data_dir = tmp_path / "data"
    body = "id,name,value\n" + "".join(f"{i},name-{i},{i * 0.5}\n" for i in range(ROWS))
    name, kind = (base64.b64encode(v).decode() for v in (b"big.csv", b"text/csv"))
    res = tushttp.request(
        "POST",
        server.files_url,
        {
            "Upload-Length": str(len(body)),
            "Upload-Metadata": f"filename {name},filetype {kind}",
            **tushttp.PATCH_TYPE,
        },
        body.encode(),
    )
    assert res.status == 201 and int(res.headers["upload-offset"]) == len(body), res
    file_id = str(res.header("Location")).rsplit("/", 1)[-1]

    first = Worker(data_dir, tmp_path / "worker1.log", args)
    workers.append(first)
    first.wait_ready()
    tushttp.poll(lambda: tmp_rows(data_dir / "rows.db", file_id) > 0, DEADLINE, interval=0.01)
    os.kill(first.proc.pid, 9)
    first.proc.wait(10)
    [job] = status(server, file_id)["jobs"]  # type: ignore[misc]
    assert job["status"] == "PROCESSING" and job["attempts"] == 1, job

    second = Worker(data_dir, tmp_path / "worker2.log", args)
    workers.append(second)
    second.wait_ready()
    deadline = time.monotonic() + DEADLINE
    while status(server, file_id)["state"] != "ready":
        assert time.monotonic() < deadline, (status(server, file_id), second.log_path.read_text()[-3000:])
        time.sleep(0.1)
    [job] = status(server, file_id)["jobs"]  # type: ignore[misc]
    assert job["status"] == "COMPLETED" and job["attempts"] == 2 and job["result"]["rows"] == ROWS
    with sqlite3.connect(data_dir / "rows.db") as db:
        count, distinct, low, high = db.execute(
            f"SELECT count(*), count(DISTINCT id), min(id), max(id) FROM rows_{file_id}"
        ).fetchone()
        leftovers = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '\\_tmp\\_%' ESCAPE '\\'"
        ).fetchone()
    assert (count, distinct, low, high) == (ROWS, ROWS, 0, ROWS - 1)
    assert leftovers == (0,)
    page = json.loads(tushttp.get(f"{server.files_url}{file_id}/rows").body)
    assert page["rows"][:2] == [
        {"id": 0, "name": "name-0", "value": 0.0},
        {"id": 1, "name": "name-1", "value": 0.5},
    ]
    assert page["total"] == ROWS
    second.proc.terminate()
    assert second.proc.wait(30) == 0, "SIGTERM stops a worker cleanly"
    assert server_errors(second.log_path) == []
    assert b"WorkerStopped" in second.log_path.read_bytes()
