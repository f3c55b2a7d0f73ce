"""Offsets never go back, on every deployment shape of the S3 relay.

One walk runs on each shape, with real ``serve`` subprocesses, a real
redis-server and moto (S3 threshold 12 MiB, 5 MiB parts, 2 spooled parts):

* ``one-process``: one instance, SQLite state;
* ``workers``: one instance with ``--workers 2`` (SQLite, file locks, one
  data dir shared by the workers; the kernel picks the worker of each
  connection);
* ``shared-dir``: two instances on one Redis and one data dir;
* ``own-dirs``: two instances on one Redis, each with its own data dir,
  ``s3.tail_in_bucket``.

The walk: a 24 MiB upload sent in 6 MiB PATCHes alternating between the
processes, each on a new connection, so every PATCH starts while the part
uploads of the previous one (on another process) were in flight. Every PATCH
at the acknowledged offset must be answered 204; after every step HEAD on
every process is at least every offset ever acknowledged or reported and at
most the bytes sent; the object in the bucket is byte-identical (sha256).
The shared-dir shape also walks a deferred-length upload (local phase, then
switched to S3 by whichever process crosses the threshold) and an upload
under the threshold (local storage only).

``test_racing_patches_then_a_kill_never_move_an_offset_back`` (every shape):
four clients PATCH the same bytes at one offset at once, spread over the
processes: exactly one gets 204, the others 409 (or 423); then a PATCH is cut
by ``kill -9`` of the process serving it (every worker, for ``--workers``),
the process is restarted, and the client resumes from HEAD: HEAD never goes
below what was acknowledged nor above what was sent, and the object is
identical.

``test_kill_mid_part_upload_on_shared_dir``: the instance sending a part to
S3 (slowed down by a proxy, so the upload is in flight) is killed with
SIGKILL; after a restart the client resumes from HEAD and the object is
identical.

Every server log must be free of 500s, tracebacks and "Task exception was
never retrieved" (:meth:`ServerGroup.stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import s3_support as s3t
from tests.integration import tushttp as tus
from tests.integration.procs import ServerGroup, ServerProcess
from tests.integration.tcp_proxy import TcpProxy

MIB = s3t.MIB
LENGTH = 24 * MIB
STEP = 6 * MIB
SHAPES = ["one-process", "workers", "shared-dir", "own-dirs"]


def _env(s3_endpoint: str, bucket: str, redis_url: str | None, *, tail: bool) -> dict[str, str]:
    env = {"TUSD_PY_SERVER_PROGRESS_INTERVAL": "0.1", "TUSD_PY_SERVER_LOCK_TIMEOUT": "10"}
    if redis_url is not None:
        env["TUSD_PY_REDIS_URL"] = redis_url
        env["TUSD_PY_REDIS_PREFIX"] = f"om-{uuid.uuid4().hex[:10]}:"
        env["TUSD_PY_REDIS_LOCK_TTL"] = "3"
    env.update(s3t.env_for(s3t.overrides(s3_endpoint, bucket, tail_in_bucket=tail, download="proxy")))
    return env


def _group(shape: str, tmp_path: Path, redis_url: str, s3_endpoint: str, bucket: str) -> ServerGroup:
    if shape == "one-process":
        env = _env(s3_endpoint, bucket, None, tail=False)
        return ServerGroup([ServerProcess(tmp_path / "data", tmp_path / "one.log", env)])
    if shape == "workers":
        env = _env(s3_endpoint, bucket, None, tail=False)
        return ServerGroup(
            [ServerProcess(tmp_path / "data", tmp_path / "workers.log", env, ("--workers", "2"))]
        )
    tail = shape == "own-dirs"
    env = _env(s3_endpoint, bucket, redis_url, tail=tail)
    return ServerGroup(
        [
            ServerProcess(tmp_path / (f"host-{n}" if tail else "shared"), tmp_path / f"{n}.log", env)
            for n in "ab"
        ]
    )


@contextlib.contextmanager
def _shape(shape: str, tmp_path: Path, redis_url: str, s3_endpoint: str) -> Iterator[tuple[ServerGroup, str]]:
    """``(group, bucket)``: the processes of ``shape`` on a fresh bucket, stopped at the end
    (which fails on any 500, traceback or orphaned task in their logs)."""
    bucket = s3t.new_bucket(s3_endpoint)
    group = _group(shape, tmp_path, redis_url, s3_endpoint, bucket)
    try:
        yield group, bucket
    finally:
        group.stop()


@dataclass
class Walk:
    """Offsets acknowledged (204) or reported (HEAD) so far, and bytes sent."""

    group: ServerGroup
    upload: str
    acked: int = 0
    sent: int = 0
    seen: list[tuple[str, int]] = field(default_factory=list)

    def urls(self) -> list[str]:
        return [self.group.url(i, self.upload) for i in range(len(self.group.servers))]

    def check(self, step: str, live: list[int] | None = None) -> None:
        """HEAD on every process (or those in ``live``): never below what was
        acknowledged or reported before, never above what was sent."""
        urls = self.urls() * (3 if len(self.group.servers) == 1 else 1)
        for index, url in enumerate(urls):
            if live is not None and index not in live:
                continue
            offset = tus.offset_of(url)
            self.seen.append((f"{step} HEAD {index}", offset))
            assert self.acked <= offset <= self.sent, (step, index, offset, self.seen, self.group.logs())
            self.acked = offset

    def patch(self, index: int, data: bytes, extra: dict[str, str] | None = None) -> None:
        """PATCH the next ``STEP`` bytes on process ``index``: must be 204."""
        url = self.urls()[index % len(self.group.servers)]
        offset = self.acked
        body = data[offset : offset + STEP]
        self.sent = max(self.sent, offset + len(body))
        headers = {"Upload-Offset": str(offset), **tus.PATCH_TYPE, **(extra or {})}
        res = tus.request("PATCH", url, headers, body)
        self.seen.append((f"PATCH {index} at {offset}", res.status))
        assert res.status == 204, (res.status, res.body, self.seen, self.group.logs())
        new = int(res.headers["upload-offset"])
        assert new == offset + len(body), self.seen
        self.acked = new
        self.check(f"after PATCH {index} at {offset}")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload_id(upload: str) -> str:
    return upload.rstrip("/").rsplit("/", 1)[-1]


def _walk(group: ServerGroup, upload: str, data: bytes, *, defer: bool = False) -> None:
    walk = Walk(group, upload)
    walk.check("created")
    steps = -(-len(data) // STEP)
    for step in range(steps):
        last = defer and step == steps - 1
        walk.patch(step, data, {"Upload-Length": str(len(data))} if last else None)
    assert walk.acked == len(data)
    got = tus.get(group.url(step % len(group.servers), upload))
    assert got.status == 200 and _sha(got.body) == _sha(data)


@pytest.mark.parametrize("shape", SHAPES)
def test_alternating_patches_never_move_an_offset_back(
    shape: str, tmp_path: Path, redis_url: str, s3_endpoint: str
) -> None:
    with _shape(shape, tmp_path, redis_url, s3_endpoint) as (group, bucket):
        data = os.urandom(LENGTH)
        upload = tus.create(group.servers[0].files_url, len(data))
        _walk(group, upload, data)
        stored = s3t.object_bytes(s3_endpoint, bucket, _upload_id(upload))
        assert _sha(stored) == _sha(data)
        assert _upload_id(upload) not in [u["Key"] for u in s3t.multipart_uploads(s3_endpoint, bucket)]
        if shape == "shared-dir":
            deferred = os.urandom(LENGTH - 3)
            res = tus.request("POST", group.servers[1].files_url, {"Upload-Defer-Length": "1"})
            assert res.status == 201, res.body
            location = res.header("Location")
            assert location
            _walk(group, location, deferred, defer=True)
            assert _sha(s3t.object_bytes(s3_endpoint, bucket, _upload_id(location))) == _sha(deferred)
            small = os.urandom(s3t.THRESHOLD - 5)  # stays in local storage
            _walk(group, tus.create(group.servers[1].files_url, len(small)), small)


def _worker_pids(parent: int) -> list[int]:
    """The child processes of ``parent`` (the workers of ``serve --workers``)."""
    children: list[int] = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        text = (task / "children").read_text().split()
        children.extend(int(pid) for pid in text)
    return children


def _healthy(base_url: str) -> bool:
    try:
        return tus.get(base_url + "/healthz").status == 200
    except OSError:
        return False


def _kill_serving(group: ServerGroup, shape: str) -> None:
    """SIGKILL the process that serves index 0's connections (every worker of ``--workers``)."""
    server = group.servers[0]
    if shape == "workers":
        workers = _worker_pids(server.pid)
        assert len(workers) == 2, workers
        for pid in workers:  # whichever one took the connection
            os.kill(pid, signal.SIGKILL)
        # the parent restarts them: wait until both answer again
        tus.poll(
            lambda: set(_worker_pids(server.pid)).isdisjoint(workers) and len(_worker_pids(server.pid)) == 2
        )
        tus.poll(lambda: all(_healthy(server.base_url) for _ in range(4)))
        return
    server.kill9()


@pytest.mark.parametrize("shape", SHAPES)
def test_racing_patches_then_a_kill_never_move_an_offset_back(
    shape: str, tmp_path: Path, redis_url: str, s3_endpoint: str
) -> None:
    with _shape(shape, tmp_path, redis_url, s3_endpoint) as (group, bucket):
        data = os.urandom(LENGTH)
        upload = tus.create(group.servers[0].files_url, len(data))
        walk = Walk(group, upload)
        walk.patch(0, data)
        # Four clients, the same next bytes, one offset, spread over the processes.
        urls = [walk.urls()[i % len(group.servers)] for i in range(4)]
        chunk = data[walk.acked : walk.acked + STEP]
        walk.sent = walk.acked + len(chunk)
        statuses = tus.race_patches(urls, walk.acked, [chunk] * 4)
        assert sorted(statuses).count(204) == 1, statuses
        assert all(code in (204, 409, 423) for code in statuses), statuses
        walk.check("after the race")
        assert walk.acked == walk.sent, walk.seen
        # A PATCH cut by kill -9 of the process serving it.
        streaming = tus.StreamingPatch(group.url(0, upload), walk.acked, STEP)
        try:
            half = STEP // 2
            assert streaming.send(data[walk.acked : walk.acked + half])
            walk.sent = walk.acked + half
            live = list(range(1, len(group.servers)))
            if live:  # another instance sees the published progress
                tus.poll(lambda: tus.offset_of(group.url(1, upload)) > walk.acked, timeout=30)
            _kill_serving(group, shape)
        finally:
            streaming.close()
        if shape != "workers":
            if live:
                walk.check("after kill -9", live=live)
            group.servers[0].start()
        walk.check("after restart")
        tus.resume(walk.urls(), data)
        walk.sent = len(data)
        walk.check("finished")
        assert _sha(s3t.object_bytes(s3_endpoint, bucket, _upload_id(upload))) == _sha(data)


class ThreadedProxy:
    """A :class:`TcpProxy` (rate-limited) on its own event loop thread."""

    def __init__(self, upstream_port: int, rate: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = TcpProxy(upstream_port, rate=rate)
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self.loop).result(10)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def slow_s3(s3_endpoint: str) -> Iterator[ThreadedProxy]:
    """The S3 endpoint at 4 MiB/s: a 5 MiB part takes over a second to send."""
    port = int(s3_endpoint.rsplit(":", 1)[1].split("/", 1)[0])
    proxy = ThreadedProxy(port, 4 * MIB)
    yield proxy
    proxy.close()


def test_kill_mid_part_upload_on_shared_dir(
    tmp_path: Path, redis_url: str, s3_endpoint: str, slow_s3: ThreadedProxy
) -> None:
    bucket = s3t.new_bucket(s3_endpoint)
    env = _env(s3_endpoint, bucket, redis_url, tail=False)
    slow_env = {**env, "TUSD_PY_S3_ENDPOINT_URL": slow_s3.proxy.url}
    data_dir = tmp_path / "shared"
    victim = ServerProcess(data_dir, tmp_path / "a.log", slow_env)
    group = ServerGroup([victim, ServerProcess(data_dir, tmp_path / "b.log", env)])
    try:
        data = os.urandom(LENGTH)
        upload = tus.create(group.servers[1].files_url, len(data))
        walk = Walk(group, upload)
        walk.patch(1, data)  # 6 MiB on B: part 1 in S3, 1 MiB spooled
        spool = data_dir / "s3spool" / _upload_id(upload)
        # A gets a 6 MiB PATCH but only 5.5 MiB of its body: part 2 is sealed
        # and on its way to S3 (slowly) while the request is still open.
        streaming = tus.StreamingPatch(group.url(0, upload), walk.acked, STEP)
        try:
            assert streaming.send(data[walk.acked : walk.acked + STEP - MIB // 2])
            walk.sent = walk.acked + STEP - MIB // 2
            tus.poll(lambda: tus.offset_of(group.url(1, upload)) == walk.sent, timeout=30)
            sending = slow_s3.proxy.forwarded
            tus.poll(lambda: slow_s3.proxy.forwarded > sending + MIB, timeout=30)
            assert (spool / "00002").exists()  # not yet confirmed and recorded
            victim.kill9()
        finally:
            streaming.close()
        walk.check("after kill -9 of A", live=[1])
        victim.start()
        walk.check("after restart of A")
        tus.resume(walk.urls(), data)
        walk.sent = len(data)
        walk.check("finished")
        assert _sha(s3t.object_bytes(s3_endpoint, bucket, _upload_id(upload))) == _sha(data)
    finally:
        group.stop()
