"""``serve --workers N``: several processes behind one port."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import tushttp as tus
from tests.integration.procs import ServerProcess, server_errors


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


def _env(backend: str, redis_url: str | None) -> dict[str, str]:
    if backend == "redis":
        assert redis_url
        return {"TUSD_PY_REDIS_URL": redis_url, "TUSD_PY_REDIS_PREFIX": f"wk-{uuid.uuid4().hex[:10]}:"}
    return {}  # SQLite state + host-local file locks


@pytest.fixture(params=["redis", "sqlite"])
def workers_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    env = {**_env(request.param, redis_url), "TUSD_PY_SERVER_PROGRESS_INTERVAL": "0.1"}
    server = ServerProcess(tmp_path / "data", tmp_path / "workers.log", env, ("--workers", "2"))
    server.start()
    yield server
    code = server.stop()
    assert code == 0, server.log_tail()
    assert not server_errors(server.log_path)


def _pids(server: ServerProcess) -> set[int]:
    return {p for group in _access_workers(server.log_path).values() for p in group}


def test_two_workers_serve_one_port_and_replace_a_dead_one(workers_server: ServerProcess) -> None:
    server = workers_server
    assert ":0/" not in server.files_url
    data = os.urandom(3 << 20)
    uploads = [tus.create(server.files_url, len(data)) for _ in range(24)]  # a connection each
    for upload in uploads[:3]:
        tus.resume([upload], data, chunk=256 * 1024)  # every PATCH on a new connection
        assert tus.get(upload).body == data
    # access lines are written by a log thread, a few milliseconds after the answer
    tus.poll(lambda: set(_access_workers(server.log_path)) == {0, 1}, timeout=10)
    workers = _access_workers(server.log_path)
    pids = _pids(server)
    assert len(pids) == 2 and server.pid not in pids
    victim = next(iter(workers[1]))
    os.kill(victim, signal.SIGKILL)
    tus.poll(lambda: not _alive(victim))

    def replaced() -> bool:
        assert tus.head(uploads[0]).status == 200  # a new connection each time
        return len(_pids(server)) >= 3

    tus.poll(replaced, timeout=30)
    assert tus.get(uploads[0]).body == data


def test_workers_serialize_writers_of_one_upload(workers_server: ServerProcess) -> None:
    """Simultaneous PATCHes at one offset (on whichever workers the kernel picks):
    never two 204s, the kept bytes come from one writer; a stalled PATCH is asked
    to release by a resuming one (same or other worker)."""
    server = workers_server
    uploads_dir = server.data_dir / "uploads"
    for round_ in range(4):
        length = 2 << 20
        payloads = [os.urandom(length), os.urandom(length)]
        upload = tus.create(server.files_url, length)
        statuses = dict(enumerate(tus.race_patches([upload, upload], 0, payloads)))
        # A cut writer is answered 400 ERR_UPLOAD_INTERRUPTED (0: the answer was lost with the connection).
        statuses = {i: 0 if s == 400 else s for i, s in statuses.items()}
        assert sorted(statuses.values()) in ([0, 204], [0, 409], [204, 409]), (round_, statuses)
        offset = tus.offset_of(upload)
        stored = (uploads_dir / upload.rsplit("/", 1)[-1]).read_bytes()
        kept = [p for p in payloads if stored[:offset] == p[:offset]]
        assert kept, f"round {round_}: stored bytes match neither writer"
        assert (204 in statuses.values()) == (offset == length), (round_, statuses, offset)
        tus.resume([upload], kept[0])
        assert tus.get(upload).body == kept[0]
    data = os.urandom(3 << 20)
    upload = tus.create(server.files_url, len(data))
    stalled = tus.StreamingPatch(upload, 0, len(data))
    try:
        assert stalled.send(data[: 1 << 20])
        path = uploads_dir / upload.rsplit("/", 1)[-1]
        tus.poll(lambda: path.stat().st_size == 1 << 20)
        statuses = tus.resume([upload], data)
        assert 423 not in statuses, statuses
        assert stalled.closed_by_server(timeout=10)
    finally:
        stalled.close()
    assert tus.get(upload).body == data
