"""``/metrics`` of ``serve --workers 2``: one scrape sums every worker."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.e2e.serverproc import metric_values
from tests.integration import tushttp as tus
from tests.integration.procs import ServerProcess, server_errors
from tests.integration.test_workers import _access_workers, _alive

#: Uploads made (each request on a new connection, so both workers get some).
N = 16
BODY = b"abc"


def _scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    res = tus.request("GET", server.base_url + "/metrics")  # a new connection: either worker
    assert res.status == 200, res.body
    return metric_values(res.body.decode())


def _total(values: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> float:
    return values.get((name, ()), 0.0)


def _metrics_dirs(tmp: Path) -> list[Path]:
    return sorted(tmp.glob("tusd-py-metrics-*"))


def test_one_scrape_of_any_worker_counts_every_workers_uploads(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = ServerProcess(
        tmp_path / "data", tmp_path / "workers.log", {"TMPDIR": str(tmp)}, ("--workers", "2")
    )
    server.start()
    try:
        assert len(_metrics_dirs(tmp)) == 1  # made by the supervisor before forking
        for _ in range(N):
            upload = tus.create(server.files_url, len(BODY))
            assert tus.patch(upload, 0, BODY).status == 204
        # both workers answered creations (the access log names the worker of each line)
        tus.poll(lambda: set(_access_workers(server.log_path)) == {0, 1}, timeout=10)
        for _ in range(6):  # whichever worker answers, it reports the sum
            values = _scrape(server)
            assert _total(values, "tusd_py_uploads_created_total") == N
            assert _total(values, "tusd_py_uploads_finished_total") == N
            assert _total(values, "tusd_py_bytes_received_total") == N * len(BODY)
            assert values[("tusd_py_requests_total", (("method", "POST"), ("status", "201")))] == N
            assert _total(values, "tusd_py_draining") == 0
        # every worker's streams ended: the sum reaches 0 (within SHARE_INTERVAL) even
        # when a worker answers nothing after its last PATCH
        tus.poll(lambda: _total(_scrape(server), "tusd_py_active_streams") == 0, timeout=10)

        # a replaced worker's counts stay in the sums
        victim = next(iter(_access_workers(server.log_path)[1]))
        os.kill(victim, signal.SIGKILL)
        tus.poll(lambda: not _alive(victim))
        tus.poll(lambda: _restarted(server, victim), timeout=30)
        assert _total(_scrape(server), "tusd_py_uploads_created_total") == N
    finally:
        code = server.stop()
    assert code == 0, server.log_tail()
    assert not server_errors(server.log_path)
    assert _metrics_dirs(tmp) == []  # removed at exit


def _restarted(server: ServerProcess, victim: int) -> bool:
    """True once a new worker answers requests (a new connection each poll)."""
    assert tus.request("GET", server.base_url + "/healthz").status == 200
    pids = {p for group in _access_workers(server.log_path).values() for p in group}
    return len(pids - {victim}) >= 2
