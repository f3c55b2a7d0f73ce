"""The one :class:`Locker` contract every implementation passes (in-process
and Redis — see ``backends.LOCKER_BACKENDS``). "Two lockers" are two server
processes for shared backends, and two requests of one process otherwise."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.contract.backends import LOCKER_BACKENDS, Env, LockerBackend
from tusd_py.core import errors, protocol
from tusd_py.locking.redis import RedisLocker


class Holder:
    """A request holding a lock: counts release requests, can release on them."""

    def __init__(self, release_on_request: bool = False) -> None:
        self.asked = 0
        self.asked_event = asyncio.Event()
        self.release_on_request = release_on_request
        self.lock: object = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self) -> None:
        self.asked += 1
        self.asked_event.set()
        if self.release_on_request and self.lock is not None:
            task = asyncio.ensure_future(self.lock.release())  # type: ignore[attr-defined]
            self._tasks.add(task)


def never() -> None:
    raise AssertionError("release requested unexpectedly")


async def wait_until(predicate: object, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.gen_test(timeout=30)
async def test_acquire_release_and_reacquire(locker_backend: LockerBackend) -> None:
    locker = await locker_backend.open()
    upload_id = protocol.new_upload_id()
    lock = locker.new_lock(upload_id)
    await lock.acquire(1.0, never)
    await lock.release()
    await lock.release()  # idempotent
    again = locker.new_lock(upload_id)
    await again.acquire(1.0, never)
    await again.release()
    await locker.new_lock(upload_id).release()  # never acquired: no-op


@pytest.mark.gen_test(timeout=30)
async def test_still_held_follows_acquire_and_release(locker_backend: LockerBackend) -> None:
    locker = await locker_backend.open()
    lock = locker.new_lock(protocol.new_upload_id())
    assert not lock.still_held()
    await lock.acquire(1.0, never)
    assert lock.still_held()
    await lock.release()
    assert not lock.still_held()
    assert await lock.try_acquire(never) and lock.still_held()
    await lock.release()


@pytest.mark.gen_test(timeout=30)
async def test_locks_of_different_uploads_are_independent(locker_backend: LockerBackend) -> None:
    locker = await locker_backend.open()
    first = locker.new_lock(protocol.new_upload_id())
    second = locker.new_lock(protocol.new_upload_id())
    await first.acquire(1.0, never)
    await second.acquire(1.0, never)
    await first.release()
    await second.release()


@pytest.mark.gen_test(timeout=30)
async def test_a_waiter_asks_the_holder_to_release_and_gets_the_lock(locker_backend: LockerBackend) -> None:
    one, two = await locker_backend.open(), await locker_backend.open()
    upload_id = protocol.new_upload_id()
    holder = Holder(release_on_request=True)
    lock = one.new_lock(upload_id)
    holder.lock = lock
    await lock.acquire(1.0, holder)
    waiter = two.new_lock(upload_id)
    await waiter.acquire(10.0, never)
    assert holder.asked == 1
    await waiter.release()


@pytest.mark.gen_test(timeout=30)
async def test_a_holder_that_does_not_release_makes_the_waiter_time_out(
    locker_backend: LockerBackend,
) -> None:
    one, two = await locker_backend.open(), await locker_backend.open()
    upload_id = protocol.new_upload_id()
    holder = Holder()
    lock = one.new_lock(upload_id)
    await lock.acquire(1.0, holder)
    with pytest.raises(errors.LockTimeout) as caught:
        await two.new_lock(upload_id).acquire(1.0, never)
    assert caught.value.status == 423 and int(caught.value.headers["Retry-After"]) >= 1
    # A second waiter asks again; the callback still runs at most once per hold.
    with pytest.raises(errors.LockTimeout):
        await two.new_lock(upload_id).acquire(0.5, never)
    assert holder.asked == 1
    await lock.release()
    taker = two.new_lock(upload_id)
    await taker.acquire(5.0, never)
    await taker.release()


@pytest.mark.gen_test(timeout=30)
async def test_a_failing_release_callback_is_logged_and_the_waiter_still_gets_the_lock(
    locker_backend: LockerBackend, caplog: pytest.LogCaptureFixture
) -> None:
    one, two = await locker_backend.open(), await locker_backend.open()
    upload_id = protocol.new_upload_id()
    lock = one.new_lock(upload_id)
    asked = asyncio.Event()

    def broken() -> None:
        asked.set()
        asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(lock.release()))
        raise RuntimeError("holder callback bug")

    await lock.acquire(1.0, broken)
    waiter = two.new_lock(upload_id)
    await waiter.acquire(10.0, never)
    assert asked.is_set()
    assert any(f"release callback of upload {upload_id} failed" in r.getMessage() for r in caplog.records)
    await waiter.release()


@pytest.mark.gen_test(timeout=30)
async def test_try_acquire_never_asks_the_holder(locker_backend: LockerBackend) -> None:
    one, two = await locker_backend.open(), await locker_backend.open()
    upload_id = protocol.new_upload_id()
    holder = Holder()
    lock = one.new_lock(upload_id)
    await lock.acquire(1.0, holder)
    polite = two.new_lock(upload_id)
    assert await polite.try_acquire(never) is False
    await lock.release()
    assert await polite.try_acquire(never) is True
    assert await one.new_lock(upload_id).try_acquire(never) is False
    await polite.release()
    assert holder.asked == 0


@pytest.mark.gen_test(timeout=30)
async def test_only_one_of_many_concurrent_waiters_holds_at_a_time(locker_backend: LockerBackend) -> None:
    lockers = [await locker_backend.open() for _ in range(3)]
    upload_id = protocol.new_upload_id()
    inside = 0
    max_inside = 0
    entered = 0

    async def worker(i: int) -> None:
        nonlocal inside, max_inside, entered
        lock = lockers[i % len(lockers)].new_lock(upload_id)
        await lock.acquire(20.0, lambda: None)  # asked to release: finishes its short work anyway
        try:
            inside += 1
            max_inside = max(max_inside, inside)
            entered += 1
            await asyncio.sleep(0.01)
        finally:
            inside -= 1
            await lock.release()

    await asyncio.gather(*(worker(i) for i in range(9)))
    assert entered == 9 and max_inside == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_held_lock_outlives_its_ttl(locker_backend: LockerBackend) -> None:
    one, two = await locker_backend.open(), await locker_backend.open()
    upload_id = protocol.new_upload_id()
    lock = one.new_lock(upload_id)
    await lock.acquire(1.0, never)
    await asyncio.sleep(max(locker_backend.ttl * 2, 0.05))  # the point: time passes
    assert await two.new_lock(upload_id).try_acquire(never) is False
    await lock.release()


@pytest.mark.parametrize("name", sorted(n for n, b in LOCKER_BACKENDS.items() if b.can_die))  # type: ignore[attr-defined]
@pytest.mark.gen_test(timeout=30)
async def test_the_lock_of_a_dead_holder_frees(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A killed holder's lock is freed: after its TTL (Redis), at once (flock)."""
    backend = LOCKER_BACKENDS[name](
        Env(tmp_path=tmp_path, redis_url=lambda: str(request.getfixturevalue("redis_url")))
    )
    try:
        locker = await backend.open()
        upload_id = protocol.new_upload_id()
        await backend.plant_dead_holder(upload_id)
        if backend.ttl > 0:
            assert await locker.new_lock(upload_id).try_acquire(never) is False
        lock = locker.new_lock(upload_id)
        await lock.acquire(max(backend.ttl, 1.0) * 10, never)  # nobody answers requests
        await lock.release()
    finally:
        await backend.close()


_REDIS_HOLDER = """
import asyncio, sys
from pathlib import Path
import redis.asyncio as aioredis
from tusd_py.locking.redis import RedisLocker

async def main() -> None:
    client = aioredis.Redis.from_url(sys.argv[1])
    locker = RedisLocker(client, sys.argv[2], ttl=60.0, mark_dir=Path(sys.argv[3]))
    await locker.new_lock(sys.argv[4]).acquire(5.0, lambda: None)
    print("held", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.gen_test(timeout=60)
async def test_a_redis_lock_of_a_killed_process_is_taken_over_at_once(redis_url: str, tmp_path: Path) -> None:
    """Another server process holds a lock with a 60 s TTL: while it lives the
    lock is not taken (nor by try_acquire); once it is killed (-9: no release,
    no heartbeat), both try_acquire and acquire take it over at once."""
    prefix = f"dead-{uuid.uuid4().hex[:10]}:"
    marks = tmp_path / "marks"
    client = aioredis.Redis.from_url(redis_url)
    locker = RedisLocker(client, prefix, ttl=60.0, mark_dir=marks)
    holders = []
    try:
        for _ in range(2):
            upload_id = protocol.new_upload_id()
            holder = subprocess.Popen(
                [sys.executable, "-c", _REDIS_HOLDER, redis_url, prefix, str(marks), upload_id],
                stdout=subprocess.PIPE,
                cwd=str(Path(__file__).resolve().parents[2]),
            )
            holders.append(holder)
            assert holder.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(holder.stdout.readline), 30)
            assert line == b"held\n"
            lock = locker.new_lock(upload_id)
            assert await lock.try_acquire(never) is False  # alive: never taken over
            holder.kill()
            await asyncio.to_thread(holder.wait, 10)
            if len(holders) == 1:
                assert await lock.try_acquire(never) is True
            else:
                await lock.acquire(2.0, never)  # well within the dead lock's 60 s TTL
            assert lock.still_held()
            await lock.release()
            assert await client.get(locker.lock_key(upload_id)) is None
    finally:
        for holder in holders:
            holder.kill()
            holder.wait(10)
            if holder.stdout is not None:
                holder.stdout.close()
        await locker.close()
        await client.aclose()


@pytest.mark.gen_test(timeout=30)
async def test_a_redis_lock_this_process_failed_to_release_is_taken_over(
    redis_url: str, tmp_path: Path
) -> None:
    """A release that Redis did not answer leaves the lock (with this
    process's mark) until its TTL; no request of this process holds it, so
    the next one takes it at once, while a lock a request does hold is not."""
    client = aioredis.Redis.from_url(redis_url)
    locker = RedisLocker(client, f"orphan-{uuid.uuid4().hex[:10]}:", ttl=60.0, mark_dir=tmp_path / "marks")
    try:
        held = locker.new_lock(protocol.new_upload_id())
        await held.acquire(1.0, lambda: None)
        assert await locker.new_lock(held.upload_id).try_acquire(never) is False
        orphan_id = protocol.new_upload_id()
        assert await client.set(locker.lock_key(orphan_id), locker.new_token(), px=60_000)
        lock = locker.new_lock(orphan_id)
        assert await lock.try_acquire(never) is True
        await lock.release()
        await held.release()
    finally:
        await locker.close()
        await client.aclose()
