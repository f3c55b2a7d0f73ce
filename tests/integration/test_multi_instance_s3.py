"""Two ``tusd-py serve`` processes on one Redis and one S3 endpoint, each with
its OWN data dir (as two hosts would have), act as one server.

Instances that share no disk run with ``s3.tail_in_bucket``: at the end of
every request the unfinished last part is stored in the bucket as
``<key>.part``, so whichever instance gets the next PATCH continues from the
recorded parts plus that object. Uploads are longer than the lowered S3
threshold (12 MiB, 5 MiB parts), so they live in S3 from their first byte.

Invariant checked throughout: an offset reported by HEAD on any instance is
one the other instance can continue from (a PATCH at it succeeds and the
finished object is byte-identical). Finished objects are read back from the
bucket with boto3. Every wait is bounded; no sleep is used to synchronise.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import s3_support as s3t
from tests.integration import tushttp as tus
from tests.integration.procs import ServerGroup, ServerProcess

MIB = s3t.MIB
#: Short lock TTL so a killed holder's lock frees quickly.
LOCK_TTL = "3"


def instance_env(redis_url: str, prefix: str, s3_endpoint: str, bucket: str) -> dict[str, str]:
    """Settings of one instance: shared Redis prefix, shared bucket, tails in the bucket."""
    env = {
        "TUSD_PY_REDIS_URL": redis_url,
        "TUSD_PY_REDIS_PREFIX": prefix,
        "TUSD_PY_REDIS_LOCK_TTL": LOCK_TTL,
        "TUSD_PY_SERVER_PROGRESS_INTERVAL": "0.1",
        "TUSD_PY_SERVER_LOCK_TIMEOUT": "10",
    }
    env.update(s3t.env_for(s3t.overrides(s3_endpoint, bucket, tail_in_bucket=True, download="proxy")))
    return env


class S3Cluster(ServerGroup):
    """Server processes sharing a Redis prefix and a bucket, each on its own data dir."""

    def __init__(self, tmp_path: Path, redis_url: str, s3_endpoint: str, bucket: str) -> None:
        self.endpoint = s3_endpoint
        self.bucket = bucket
        env = instance_env(redis_url, f"it-s3-{uuid.uuid4().hex[:10]}:", s3_endpoint, bucket)
        super().__init__(
            [ServerProcess(tmp_path / f"host-{name}", tmp_path / f"{name}.log", env) for name in "ab"]
        )

    def urls(self, upload_url: str) -> list[str]:
        return [self.url(i, upload_url) for i in range(len(self.servers))]

    def stored(self, upload_url: str) -> bytes:
        """The finished object of an upload, read from the bucket."""
        return s3t.object_bytes(self.endpoint, self.bucket, upload_url.rstrip("/").rsplit("/", 1)[-1])

    def assert_clean(self, upload_url: str) -> None:
        """Nothing but the object is left in the bucket: no multipart upload, no ``.part``."""
        upload_id = upload_url.rstrip("/").rsplit("/", 1)[-1]
        pending = [u["Key"] for u in s3t.multipart_uploads(self.endpoint, self.bucket)]
        assert upload_id not in pending
        listed = s3t.client(self.endpoint).list_objects_v2(Bucket=self.bucket, Prefix=upload_id)
        assert [o["Key"] for o in listed.get("Contents", [])] == [upload_id]


@pytest.fixture
def cluster(tmp_path: Path, redis_url: str, s3_endpoint: str) -> Iterator[S3Cluster]:
    group = S3Cluster(tmp_path, redis_url, s3_endpoint, s3t.new_bucket(s3_endpoint))
    yield group
    group.stop()


def _patch_when_unlocked(url: str, offset: int, data: bytes, timeout: float = 30.0) -> tus.Response:
    """PATCH, retrying only while the upload is locked (423: a dead holder's lock
    has not expired yet). Any other answer is returned as is."""
    result: list[tus.Response] = []

    def attempt() -> bool:
        res = tus.patch(url, offset, data)
        if res.status == 423:
            return False
        result.append(res)
        return True

    tus.poll(attempt, timeout=timeout, interval=0.1)
    return result[0]


def test_patches_alternating_between_instances_complete_byte_identical(cluster: S3Cluster) -> None:
    data = s3t.pattern(23 * MIB + 4321, seed=61)
    upload = tus.create(cluster.servers[0].files_url, len(data))
    offset, turn = 0, 0
    # Pieces not aligned with the 5 MiB parts: tails cross part boundaries and
    # every PATCH starts where the other instance left a tail in the bucket.
    piece = 2 * MIB + 333_333
    while offset < len(data):
        res = tus.patch(cluster.url(turn % 2, upload), offset, data[offset : offset + piece])
        assert res.status == 204, (res.status, res.body, cluster.logs())
        offset = int(res.headers["upload-offset"])
        turn += 1
        if offset < len(data):
            assert tus.offset_of(cluster.url(turn % 2, upload)) == offset
    assert offset == len(data) and turn >= 10
    assert cluster.stored(upload) == data
    cluster.assert_clean(upload)
    for index in (0, 1):
        assert tus.offset_of(cluster.url(index, upload)) == len(data)
        assert tus.get(cluster.url(index, upload)).body == data


@pytest.mark.parametrize("start", [0, 7 * MIB + 5])
def test_simultaneous_patches_at_one_offset_on_two_instances(cluster: S3Cluster, start: int) -> None:
    """Exactly one writer's bytes are kept (never a mix), and the upload
    finishes correctly from the offset HEAD reports afterwards."""
    length = 14 * MIB + 17
    base = s3t.pattern(length, seed=62)
    upload = tus.create(cluster.servers[0].files_url, length)
    if start:
        assert tus.patch(cluster.url(0, upload), 0, base[:start]).status == 204
    payloads = [
        base[:start] + s3t.pattern(length - start, seed=63),
        base[:start] + s3t.pattern(length - start, seed=64),
    ]
    raced = tus.race_patches(cluster.urls(upload), start, [p[start:] for p in payloads])
    # One writer wins: it completes (204) or, asked to release mid-body, is cut
    # (400 ERR_UPLOAD_INTERRUPTED or a lost connection: 0) keeping what it
    # wrote; the other is refused (409), or wins if the first was cut early.
    statuses = {i: 0 if s == 400 else s for i, s in enumerate(raced)}
    assert sorted(statuses.values()) in ([0, 204], [0, 409], [204, 409]), (statuses, cluster.logs())
    offset = tus.offset_of(cluster.url(0, upload))
    assert offset == tus.offset_of(cluster.url(1, upload))
    winner = next((i for i, s in statuses.items() if s == 204), None)
    if winner is not None:
        assert offset == length
        assert cluster.stored(upload) == payloads[winner]
        cluster.assert_clean(upload)
        return
    assert start <= offset < length, "a writer whose body arrived completely was not answered 204"
    # Finish with payload 0 from the reported offset, on the other instance
    # first: whatever was kept before it must be one writer's bytes, unmixed.
    res = _patch_when_unlocked(cluster.url(1, upload), offset, payloads[0][offset:])
    assert res.status == 204, (res.status, res.body, cluster.logs())
    stored = cluster.stored(upload)
    assert stored in [p[:offset] + payloads[0][offset:] for p in payloads]
    cluster.assert_clean(upload)


def test_kill_9_mid_patch_resumes_on_the_other_instance(cluster: S3Cluster) -> None:
    data = s3t.pattern(17 * MIB + 999, seed=65)
    upload = tus.create(cluster.servers[0].files_url, len(data))
    first = tus.patch(cluster.url(1, upload), 0, data[: 3 * MIB + 1])  # a tail in the bucket
    assert first.status == 204
    dying = tus.StreamingPatch(cluster.url(0, upload), 3 * MIB + 1, len(data) - 3 * MIB - 1)
    try:
        sent = 3 * MIB + 1
        # Part 1 fills and is uploaded in the background while part 2 is
        # only on A's disk; wait until B sees progress published by A.
        for step in (3 * MIB, 2 * MIB):
            assert dying.send(data[sent : sent + step])
            sent += step
        tus.poll(lambda: tus.offset_of(cluster.url(1, upload)) > 3 * MIB + 1, timeout=20)
        cluster.servers[0].kill9()
    finally:
        dying.close()
    # What B reports is what B can continue from: a PATCH there succeeds
    # (after the dead holder's lock expires) and the object is exact.
    # Part 2 lived on A's disk only: A never announced it, only part 1's end.
    offset = tus.offset_of(cluster.url(1, upload))
    assert offset == 5 * MIB < sent
    res = _patch_when_unlocked(cluster.url(1, upload), offset, data[offset:])
    assert res.status == 204, (res.status, res.body, cluster.logs())
    assert int(res.headers["upload-offset"]) == len(data)
    assert cluster.stored(upload) == data
    cluster.assert_clean(upload)


def test_a_patch_on_one_instance_makes_the_holder_on_the_other_release(cluster: S3Cluster) -> None:
    """A stalled PATCH on A is asked (over Redis) to stop when the client
    resumes on B; A stores its tail in the bucket before unlocking, so B
    continues at once (no lock wait) and the object is exact."""
    data = os.urandom(16 * MIB + 3)
    upload = tus.create(cluster.servers[0].files_url, len(data))
    stalled = tus.StreamingPatch(cluster.url(0, upload), 0, len(data))
    try:
        assert stalled.send(data[: 8 * MIB])
        tus.poll(lambda: tus.offset_of(cluster.url(1, upload)) > 0, timeout=20)
        statuses = tus.resume([cluster.url(1, upload)], data, chunk=4 * MIB)
        assert 423 not in statuses, statuses
        assert stalled.closed_by_server(timeout=10)
    finally:
        stalled.close()
    assert cluster.stored(upload) == data
    cluster.assert_clean(upload)
