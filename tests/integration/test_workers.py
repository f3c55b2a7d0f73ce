"""``serve --workers N``: several processes behind one port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from tests.integration import tushttp as tus
from tests.integration.procs import ROOT, ServerProcess, server_env, server_errors


def _access_workers(log_path: Path) -> dict[int, set[int]]:
    """``{worker index: {pids}}`` of the access-log lines."""
    seen: dict[int, set[int]] = {}
    for line in log_path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") == "Request" and "worker" in record:
            seen.setdefault(int(record["worker"]), set()).add(int(record["worker_pid"]))
    return seen


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_two_workers_serve_one_port_and_stop_together(tmp_path: Path, redis_url: str) -> None:
    env = {"TUSD_PY_REDIS_URL": redis_url, "TUSD_PY_REDIS_PREFIX": f"wk-{uuid.uuid4().hex[:10]}:"}
    server = ServerProcess(tmp_path / "data", tmp_path / "workers.log", env, ("--workers", "2"))
    server.start()
    try:
        assert ":0/" not in server.files_url
        data = os.urandom(3 << 20)
        uploads = [tus.create(server.files_url, len(data)) for _ in range(24)]  # a connection each
        for upload in uploads[:4]:
            tus.resume([upload], data, chunk=512 * 1024)
            assert tus.get(upload).body == data
        workers = _access_workers(server.log_path)
        assert set(workers) == {0, 1}, workers
        pids = {pid for group in workers.values() for pid in group}
        assert len(pids) == 2 and server.pid not in pids
        # A worker that dies is replaced; the port keeps answering meanwhile.
        victim = next(iter(workers[1]))
        os.kill(victim, signal.SIGKILL)
        tus.poll(lambda: not _alive(victim))

        def replaced() -> bool:
            assert tus.head(uploads[0]).status == 200  # a new connection each time
            return len({p for g in _access_workers(server.log_path).values() for p in g}) >= 3

        tus.poll(replaced, timeout=30)
        pids = {p for g in _access_workers(server.log_path).values() for p in g} - {victim}
    finally:
        code = server.stop()
    assert code == 0, server.log_tail()
    assert not server_errors(server.log_path)
    for pid in pids:
        assert not _alive(pid)


def test_more_than_one_worker_without_redis_is_a_config_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tusd_py",
            "serve",
            "--no-auth",
            "--port",
            "0",
            "--workers",
            "2",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        env=server_env({}),
        cwd=str(ROOT),
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert b"server.workers" in proc.stderr and b"redis" in proc.stderr
