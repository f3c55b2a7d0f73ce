"""A ``tusd-py serve`` on Redis killed with ``kill -9`` mid-PATCH leaves its
upload lock behind (until ``lock_ttl``). Neither its restart nor a surviving
instance may be held up by it: the restarted instance's reconciliation takes
the dead holder's lock over at once and publishes what is on disk, so HEAD
says exactly what the data dir holds and a PATCH from there completes.

``lock_ttl`` is long (60 s) and no progress is published during the PATCH
(``progress_interval`` 60 s), so without the fix the restart skips the upload
as busy, HEAD says 0 and the next PATCH waits for the lock until 423.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

from tests.integration import tushttp as tus
from tests.integration.procs import ServerGroup, ServerProcess
from tests.integration.test_multi_instance import instance_env

MIB = 1 << 20


def _env(redis_url: str) -> dict[str, str]:
    return {
        **instance_env(redis_url, f"crash-{uuid.uuid4().hex[:10]}:"),
        "TUSD_PY_REDIS_LOCK_TTL": "60",
        "TUSD_PY_SERVER_PROGRESS_INTERVAL": "60",
        "TUSD_PY_SERVER_LOCK_TIMEOUT": "5",
    }


def _die_mid_patch(server: ServerProcess, upload: str, data: bytes, sent: int) -> Path:
    """PATCH ``data`` to ``upload`` on ``server``, kill -9 it once ``sent``
    bytes are in the file; returns the file."""
    path = server.data_dir / "uploads" / upload.rstrip("/").rsplit("/", 1)[-1]
    dying = tus.StreamingPatch(tus.on(server.base_url, upload), 0, len(data))
    try:
        assert dying.send(data[:sent])
        tus.poll(lambda: path.exists() and path.stat().st_size == sent)
        server.kill9()
    finally:
        dying.close()
    return path


def _finish_from_head(url: str, data: bytes, on_disk: int) -> None:
    """HEAD reports what is on disk; one PATCH from there completes the upload."""
    assert tus.offset_of(url) == on_disk
    res = tus.patch(url, on_disk, data[on_disk:])
    assert res.status == 204, (res.status, res.body)
    assert hashlib.sha256(tus.get(url).body).digest() == hashlib.sha256(data).digest()


def test_restart_after_kill_9_mid_patch_reports_and_resumes_from_disk(tmp_path: Path, redis_url: str) -> None:
    env = _env(redis_url)
    data_dir = tmp_path / "data"
    data = os.urandom(3 * MIB + 4321)
    first = ServerProcess(data_dir, tmp_path / "first.log", env).start()
    upload = tus.create(first.files_url, len(data))
    sent = 2 * MIB + 777
    path = _die_mid_patch(first, upload, data, sent)
    restarted = ServerGroup([ServerProcess(data_dir, tmp_path / "restarted.log", env)])
    try:
        url = tus.on(restarted.servers[0].base_url, upload)
        assert path.stat().st_size == sent
        _finish_from_head(url, data, sent)
        assert "taken over" in restarted.servers[0].log_path.read_text()
    finally:
        restarted.stop()


def test_a_surviving_instance_reports_and_resumes_from_disk_at_once(tmp_path: Path, redis_url: str) -> None:
    """The client moves to instance B after A died holding the lock: B's HEAD
    reports what A wrote (the dead writer's lock does not count as a live
    one), and B does not wait ``lock_ttl`` (60 s, past ``lock_timeout``) for
    the PATCH from there."""
    env = _env(redis_url)
    data_dir = tmp_path / "shared-data"
    group = ServerGroup([ServerProcess(data_dir, tmp_path / f"{n}.log", env) for n in "ab"])
    try:
        data = os.urandom(3 * MIB + 99)
        upload = tus.create(group.servers[0].files_url, len(data))
        sent = MIB + 5
        path = _die_mid_patch(group.servers[0], upload, data, sent)
        group.servers = group.servers[1:]  # A is gone; B alone is checked at stop
        url = tus.on(group.servers[0].base_url, upload)
        assert path.stat().st_size == sent
        _finish_from_head(url, data, sent)
    finally:
        group.stop()
