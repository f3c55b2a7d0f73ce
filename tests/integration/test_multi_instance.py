"""Several ``tusd-py serve`` processes on one Redis act as one server.

Instances share a real redis-server and one data dir (local storage; the S3
relay is not on main yet). Uploads are driven with a blocking tus client from
threads; every wait is bounded.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import tushttp as tus
from tests.integration.procs import RedisProcess, ServerGroup, ServerProcess

MIB = 1 << 20
#: Short lock TTL so a killed holder's lock frees quickly in tests.
LOCK_TTL = "3"


def instance_env(redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "TUSD_PY_REDIS_URL": redis_url,
        "TUSD_PY_REDIS_PREFIX": prefix,
        "TUSD_PY_REDIS_LOCK_TTL": LOCK_TTL,
        "TUSD_PY_SERVER_PROGRESS_INTERVAL": "0.1",
        "TUSD_PY_SERVER_LOCK_TIMEOUT": "10",
    }


class Cluster(ServerGroup):
    """Server processes sharing one Redis prefix and one data dir."""

    def __init__(self, tmp_path: Path, redis_url: str, names: str) -> None:
        self.data_dir = tmp_path / "shared-data"
        self.env = instance_env(redis_url, f"it-{uuid.uuid4().hex[:10]}:")
        super().__init__([ServerProcess(self.data_dir, tmp_path / f"{n}.log", self.env) for n in names])

    def stored(self, upload_url: str) -> bytes:
        """The bytes of an upload's file in the shared data dir."""
        upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
        return (self.data_dir / "uploads" / upload_id).read_bytes()


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str) -> Iterator[Cluster]:
    group = Cluster(tmp_path, redis_url, "ab")
    yield group
    group.stop()


def test_patches_alternating_between_instances_complete_byte_identical(cluster: Cluster) -> None:
    data = os.urandom(6 * MIB + 12345)
    upload = tus.create(cluster.servers[0].files_url, len(data))
    offset, turn = 0, 0
    for _ in range(100):
        if offset == len(data):
            break
        res = tus.patch(cluster.url(turn % 2, upload), offset, data[offset : offset + 512 * 1024 + 7])
        assert res.status == 204, (res.status, res.body, cluster.logs())
        offset = int(res.headers["upload-offset"])
        turn += 1
    assert offset == len(data) and turn > 10
    for index in (0, 1):
        assert tus.offset_of(cluster.url(index, upload)) == len(data)
        assert tus.get(cluster.url(index, upload)).body == data


def test_simultaneous_patches_at_one_offset_on_two_instances(cluster: Cluster) -> None:
    """Exactly one writer's bytes are kept: never two 204s, never a mix, and a
    client whose whole body arrived gets its 204 even when asked to release."""
    for round_ in range(3):
        length = 3 * MIB
        payloads = [os.urandom(length), os.urandom(length)]
        upload = tus.create(cluster.servers[0].files_url, length)
        statuses = dict(
            enumerate(tus.race_patches([cluster.url(0, upload), cluster.url(1, upload)], 0, payloads))
        )
        # One writer wins: it completes (204) or, asked to release mid-body, is cut (0)
        # keeping what it wrote; the other is refused (409), or wins if the first
        # was cut before writing anything.
        # A cut writer is answered 400 ERR_UPLOAD_INTERRUPTED (0: the answer was lost with the connection).
        statuses = {i: 0 if s == 400 else s for i, s in statuses.items()}
        assert sorted(statuses.values()) in ([0, 204], [0, 409], [204, 409]), (round_, statuses)
        offset = tus.offset_of(cluster.url(0, upload))
        assert offset == tus.offset_of(cluster.url(1, upload))
        stored = cluster.stored(upload)
        kept = [p for p in payloads if stored[:offset] == p[:offset] and len(stored) >= offset]
        assert kept, f"round {round_}: stored bytes match neither writer"
        winner = next((i for i, s in statuses.items() if s == 204), None)
        if winner is not None:
            assert offset == length and stored == payloads[winner]
        else:
            assert offset < length, "a writer whose body arrived completely was not answered 204"
        # The client that kept its bytes finishes; the result is that payload exactly.
        tus.resume([cluster.url(0, upload), cluster.url(1, upload)], kept[0])
        assert tus.get(cluster.url(1, upload)).body == kept[0]


def test_a_patch_on_one_instance_makes_the_holder_on_the_other_release(cluster: Cluster) -> None:
    data = os.urandom(4 * MIB)
    upload = tus.create(cluster.servers[0].files_url, len(data))
    stalled = tus.StreamingPatch(cluster.url(0, upload), 0, len(data))
    try:
        assert stalled.send(data[: MIB + 100])
        tus.poll(lambda: len(cluster.stored(upload)) == MIB + 100)  # A holds the lock and wrote
        # The client gave up on its stalled connection and resumes on instance B:
        # B asks A (over Redis pub/sub) to stop, save and unlock.
        statuses = tus.resume([cluster.url(1, upload)], data)
        assert 423 not in statuses, statuses  # no waiting for a lock timeout
        assert stalled.closed_by_server(timeout=10)
    finally:
        stalled.close()
    assert tus.get(cluster.url(0, upload)).body == data


def test_kill_9_mid_patch_resumes_on_the_other_instance(cluster: Cluster) -> None:
    data = os.urandom(6 * MIB)
    upload = tus.create(cluster.servers[0].files_url, len(data))
    dying = tus.StreamingPatch(cluster.url(0, upload), 0, len(data))
    try:
        assert dying.send(data[: 3 * MIB])
        tus.poll(lambda: len(cluster.stored(upload)) == 3 * MIB)
        cluster.servers[0].kill9()
    finally:
        dying.close()
    offset = tus.offset_of(cluster.url(1, upload))
    assert offset <= 3 * MIB  # what was published; never more than was received
    assert cluster.stored(upload)[:offset] == data[:offset]
    # The dead instance's lock expires after its TTL; B takes over.
    tus.resume([cluster.url(1, upload)], data)
    assert tus.get(cluster.url(1, upload)).body == data


def test_redis_outage_answers_503_and_uploads_go_on_after_it(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path / "redis")
    redis.start()
    try:
        group = Cluster(tmp_path, redis.url, "ab")
        try:
            _outage_scenario(group, redis)
        finally:
            group.stop()
    finally:
        redis.stop()


def _assert_unavailable(res: tus.Response) -> None:
    assert res.status == 503, (res.status, res.body)
    assert int(res.headers["retry-after"]) >= 1
    assert b"ERR_STATE_STORE" in res.body or not res.body


def _outage_scenario(group: Cluster, redis: RedisProcess) -> None:
    data = os.urandom(4 * MIB)
    upload = tus.create(group.servers[0].files_url, len(data))
    assert tus.patch(group.url(0, upload), 0, data[:MIB]).status == 204
    streaming = tus.StreamingPatch(group.url(1, upload), MIB, len(data) - MIB)
    try:
        assert streaming.send(data[MIB : MIB + 256 * 1024])
        tus.poll(lambda: len(group.stored(upload)) == MIB + 256 * 1024)
        redis.kill()
        # The in-flight PATCH cannot publish its offset any more: it ends with a
        # 503 (or its connection is cut); the bytes it wrote stay in the file.
        position = MIB + 256 * 1024
        for _ in range(400):
            piece = data[position : position + 16 * 1024]
            if not piece or not streaming.send(piece) or streaming.closed_by_server(timeout=0.02):
                break
            position += len(piece)
        status = streaming.status(timeout=20)
        assert status in (503, None), status
    finally:
        streaming.close()
    for index in (0, 1):
        url = group.url(index, upload)
        _assert_unavailable(tus.head(url))
        _assert_unavailable(tus.patch(url, MIB, data[MIB : 2 * MIB]))
        _assert_unavailable(tus.request("POST", group.servers[index].files_url, {"Upload-Length": "10"}))
        assert tus.request("GET", group.servers[index].base_url + "/readyz").status == 503
    redis.start()  # same port, same append-only file
    tus.poll(lambda: tus.head(group.url(0, upload)).status == 200, timeout=30)
    tus.poll(lambda: tus.head(group.url(1, upload)).status == 200, timeout=30)
    for server in group.servers:
        assert tus.request("GET", server.base_url + "/readyz").status == 200
    offset = tus.offset_of(group.url(0, upload))
    assert offset >= MIB and group.stored(upload)[:offset] == data[:offset]
    tus.resume([group.url(0, upload), group.url(1, upload)], data)
    for index in (0, 1):
        assert tus.get(group.url(index, upload)).body == data
    fresh = tus.create(group.servers[1].files_url, 5)
    assert tus.patch(group.url(0, fresh), 0, b"hello").status == 204
    assert tus.get(group.url(1, fresh)).body == b"hello"
