"""Redis backends when Redis fails: every call maps to StateStoreError (503),
locks that may be lost stop their holder, and nothing broken is cached."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests import services
from tests.integration.procs import RedisProcess
from tusd_py.core import errors, protocol
from tusd_py.core.config import load_config
from tusd_py.core.models import PartRecord, UploadInfo
from tusd_py.locking.base import Lock
from tusd_py.locking.redis import RedisLock, RedisLocker
from tusd_py.state.base import StateStore
from tusd_py.state.redis import RedisStateStore
from tusd_py.state.redis_conn import open_redis

#: Arguments for every StateStore method (a missing entry fails the test below).
CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "create": ((UploadInfo(id="a" * 32, owner="o", length=1),), {}),
    "get": (("a" * 32,), {}),
    "commit_offset": (("a" * 32, 0, 1), {"updated_at": 1.0, "expires_at": None}),
    "reset_offset": (("a" * 32, 0), {}),
    "update": (("a" * 32, {"mime": "a/b"}), {}),
    "delete": (("a" * 32,), {}),
    "list_expired": ((1.0, 10), {}),
    "purge_tombstones": ((1.0, 10), {}),
    "list_uploads": ((), {"owner": None, "after": None, "limit": 10}),
    "list_ids": (("", 10), {}),
    "put_part": (("a" * 32, PartRecord(1, "e", 1)), {}),
    "list_parts": (("a" * 32,), {}),
    "get_idempotency_key": (("o", "k", 1.0), {}),
    "claim_idempotency_key": (("o", "k", "a" * 32), {"now": 1.0, "expires_at": 2.0}),
    "release_idempotency_key": (("o", "k", "a" * 32), {}),
    "delete_parts": (("a" * 32,), {}),
    "ping": ((), {}),
}


def _unreachable() -> aioredis.Redis:
    port = services.free_port()  # nothing listens there
    return aioredis.Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1.0)


def test_every_state_store_method_is_covered() -> None:
    methods = {n for n, _ in inspect.getmembers(StateStore, inspect.isfunction) if not n.startswith("_")}
    # purge_idempotency_keys does no I/O on Redis (keys expire natively).
    assert methods - {"close", "purge_idempotency_keys"} == set(CALLS)


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.gen_test(timeout=30)
async def test_state_store_calls_fail_with_503_when_redis_is_unreachable(method: str) -> None:
    client = _unreachable()
    store = RedisStateStore(client, "x:")
    args, kwargs = CALLS[method]
    try:
        with pytest.raises(errors.StateStoreError) as caught:
            await getattr(store, method)(*args, **kwargs)
        assert caught.value.status == 503 and int(caught.value.headers["Retry-After"]) >= 1
        assert "127.0.0.1" not in caught.value.message  # details go to the log, not to clients
    finally:
        await store.close()
        await client.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_locker_fails_with_503_when_redis_is_unreachable() -> None:
    client = _unreachable()
    locker = RedisLocker(client, "x:", ttl=1.0)
    try:
        with pytest.raises(errors.StateStoreError):
            await locker.new_lock("a" * 32).acquire(1.0, lambda: None)
        with pytest.raises(errors.StateStoreError):
            await locker.new_lock("a" * 32).try_acquire(lambda: None)
        await locker.new_lock("a" * 32).release()  # never raises
    finally:
        await locker.close()
        await client.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_a_holder_whose_lock_was_taken_over_is_asked_to_stop(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    locker = RedisLocker(client, f"lost-{uuid.uuid4().hex[:8]}:", ttl=0.6)
    upload_id = protocol.new_upload_id()
    stopped = asyncio.Event()
    lock = locker.new_lock(upload_id)
    try:
        await lock.acquire(1.0, stopped.set)
        await client.set(locker.lock_key(upload_id), "someone-else")  # e.g. it expired meanwhile
        await asyncio.wait_for(stopped.wait(), 5.0)
        await lock.release()
        assert await client.get(locker.lock_key(upload_id)) == b"someone-else"  # not deleted
    finally:
        await locker.close()
        await client.aclose()


@pytest.mark.gen_test(timeout=60)
async def test_holder_stops_before_its_lock_can_expire_and_everything_recovers(
    own_redis: RedisProcess,
) -> None:
    ttl = 1.2
    client = open_redis(load_config(environ={}, overrides={"redis.url": own_redis.url}))
    assert client is not None  # the production client settings
    locker = RedisLocker(client, "outage:", ttl=ttl)
    store = RedisStateStore(client, "outage:")
    upload_id = protocol.new_upload_id()
    stopped = asyncio.Event()
    lock: Lock = locker.new_lock(upload_id)
    try:
        await store.create(UploadInfo(id=upload_id, owner="o", length=10))
        await lock.acquire(1.0, stopped.set)
        own_redis.kill()
        # The heartbeat cannot renew: the holder is asked to stop (the lock aims
        # to do so lock_ttl/4 before its TTL could run out).
        await asyncio.wait_for(stopped.wait(), 10.0)
        # Whatever the holder still tries to write, it is refused once the lease
        # may have run out.
        assert isinstance(lock, RedisLock)
        await asyncio.sleep(max(0.0, lock.valid_until - asyncio.get_running_loop().time()))
        assert not lock.still_held()
        await lock.release()  # Redis is down: logged, not raised
        with pytest.raises(errors.StateStoreError):
            await store.get(upload_id)
        own_redis.start()
        # The same client recovers by itself; no request fails on a dead pooled connection.
        got = await store.get(upload_id)
        assert got is not None and got.id == upload_id
        again = locker.new_lock(upload_id)
        await again.acquire(ttl * 5, lambda: None)  # the stale lock expired (TTL)
        await again.release()
    finally:
        await locker.close()
        await client.aclose()
