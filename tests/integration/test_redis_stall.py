"""A Redis that accepts connections but does not answer (SIGSTOPped, frozen,
swapping) gets requests a 503 with ``Retry-After`` within ``[redis] timeout``,
and the service resumes by itself once Redis answers again.

The test owns its redis-server (never the shared one: it is stopped) and one
``tusd-py serve`` subprocess. Each request's upper bound is the client's own
socket timeout (a deadline, not a sleep): ``timeout`` + a margin for a busy
machine. Before the fix a command that timed out was retried and the
health-check PING had its own 5 s timeout, so every request took 10-20 s.
"""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

from tests.integration import tushttp as tus
from tests.integration.procs import RedisProcess, ServerProcess

#: ``[redis] timeout`` of the server under test (the default is 2 s; shorter keeps the test fast).
REDIS_TIMEOUT = 1.0
#: What a loaded 2-core machine may add to it (scheduling, process start-up).
MARGIN = 3.0


def _frozen(redis: RedisProcess, frozen: bool) -> None:
    assert redis.proc is not None
    os.kill(redis.proc.pid, signal.SIGSTOP if frozen else signal.SIGCONT)


def _refused_in_time(method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
    """``method url`` is answered 503 + Retry-After before the deadline."""
    try:
        res = tus.request(method, url, headers, body or None, timeout=REDIS_TIMEOUT + MARGIN)
    except TimeoutError as exc:
        raise AssertionError(f"{method} not answered within {REDIS_TIMEOUT + MARGIN}s") from exc
    assert res.status == 503, (method, res.status, res.body)
    assert int(res.headers["retry-after"]) >= 1, res.headers
    if method != "HEAD":
        assert b"ERR_STATE_STORE" in res.body, res.body


def test_a_frozen_redis_gets_503_within_its_timeout_and_service_resumes(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    env = {
        "TUSD_PY_REDIS_URL": own_redis.url,
        "TUSD_PY_REDIS_PREFIX": f"stall-{uuid.uuid4().hex[:8]}:",
        "TUSD_PY_REDIS_TIMEOUT": str(REDIS_TIMEOUT),
        "TUSD_PY_SERVER_PROGRESS_INTERVAL": "0.1",
    }
    server = ServerProcess(tmp_path / "data", tmp_path / "server.log", env).start()
    try:
        upload = tus.on(server.base_url, tus.create(server.files_url, 20))
        assert tus.patch(upload, 0, b"a" * 10).status == 204
        streamed = tus.on(server.base_url, tus.create(server.files_url, 1 << 20))
        streamed_file = server.data_dir / "uploads" / streamed.rsplit("/", 1)[-1]
        streaming = tus.StreamingPatch(streamed, 0, 1 << 20, timeout=REDIS_TIMEOUT + MARGIN)
        try:
            assert streaming.send(b"s" * 4096)
            tus.poll(lambda: streamed_file.exists() and streamed_file.stat().st_size == 4096)
            _frozen(own_redis, True)
            # The PATCH in flight cannot publish its progress: answered 503 (or
            # cut) within the timeout, while its client keeps sending.
            for _ in range(100):
                if not streaming.send(b"s" * 1024) or streaming.closed_by_server(0.05):
                    break
            status = streaming.status(timeout=REDIS_TIMEOUT + MARGIN)
            # None: the connection ended (reset) without a status; not a timeout.
            assert status == 503 or (status is None and streaming.closed_by_server(0.001)), status
        finally:
            streaming.close()
        patch_headers = {"Upload-Offset": "10", **tus.PATCH_TYPE}
        for _ in range(2):  # the second round runs on connections opened during the outage
            _refused_in_time("HEAD", upload)
            _refused_in_time("POST", server.files_url, {"Upload-Length": "10"})
            _refused_in_time("PATCH", upload, patch_headers, b"b" * 10)
        _frozen(own_redis, False)
        tus.poll(lambda: tus.head(upload).status == 200, timeout=30)
        assert tus.offset_of(upload) == 10
        assert tus.offset_of(streamed) == streamed_file.stat().st_size  # what is durable
        assert tus.patch(upload, 10, b"b" * 10).status == 204
        assert tus.get(upload).body == b"a" * 10 + b"b" * 10
        assert tus.create(server.files_url, 5)
    finally:
        if own_redis.proc is not None:
            _frozen(own_redis, False)
        server.stop()
