"""One suite for the limits, run against both backends: in-process and a real redis-server.

Time is a :class:`FakeClock` shared by the guard, its counters and leases, so
windows and lease TTLs are crossed by stepping the clock, not by waiting.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.fakes import FakeClock
from tests.streams import eventually
from tusd_py.core import errors
from tusd_py.core.config import load_config
from tusd_py.core.models import Principal
from tusd_py.throttle import ThrottleGuard, build_throttle_guard
from tusd_py.throttle.base import StreamSlot
from tusd_py.throttle.leases import LeaseStore, MemoryLeaseStore, RedisLeaseStore

BACKENDS = ["memory", "redis"]


def basic(user: str = "alice") -> Principal:
    return Principal(user=user, tier="basic")


def premium(user: str = "pat") -> Principal:
    return Principal(user=user, tier="premium")


class Instances:
    """Guards on one backend; with Redis, every guard made here shares the same keys."""

    def __init__(self, backend: str, redis_url: str, clock: FakeClock) -> None:
        self.backend = backend
        self.redis_url = redis_url
        self.clock = clock
        self.prefix = f"t{secrets.token_hex(4)}:"
        self.guards: list[ThrottleGuard] = []
        self.clients: list[aioredis.Redis] = []

    def guard(self, **throttle: Any) -> ThrottleGuard:
        overrides: dict[str, Any] = {f"throttle.{k}": v for k, v in throttle.items() if k != "max_streams"}
        if "max_streams" in throttle:
            overrides["server.max_streams"] = throttle["max_streams"]
        client = None
        if self.backend == "redis":
            overrides["redis.url"] = self.redis_url
            overrides["redis.prefix"] = self.prefix
            client = aioredis.Redis.from_url(self.redis_url)
            self.clients.append(client)
        config = load_config(environ={}, overrides=overrides)
        guard = build_throttle_guard(config, client, clock=self.clock)
        self.guards.append(guard)
        return guard

    async def aclose(self) -> None:
        for guard in self.guards:
            await guard.close()
        for client in self.clients:
            await client.aclose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.asynccontextmanager
async def instances(backend: str, redis_url: str, clock: FakeClock | None = None) -> AsyncIterator[Instances]:
    made = Instances(backend, redis_url, clock or FakeClock())
    try:
        yield made
    finally:
        await made.aclose()


# --- request rates -------------------------------------------------------------


@pytest.mark.gen_test
async def test_eleventh_creation_from_one_ip_is_refused(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard()
        for i in range(10):
            headers = await guard.check("create", basic(f"u{i}"), "10.0.0.1")
            assert headers["RateLimit-Limit"] == "10"
            assert headers["RateLimit-Remaining"] == str(9 - i)
            assert 1 <= int(headers["RateLimit-Reset"]) <= 60
        with pytest.raises(errors.RateLimited) as info:
            await guard.check("create", basic("u10"), "10.0.0.1")
        exc = info.value
        assert exc.status == 429 and exc.code == "ERR_RATE_LIMITED"
        assert "10 upload creations per minute per IP address" in exc.message
        assert 1 <= int(exc.headers["Retry-After"]) <= 60
        assert exc.headers["RateLimit-Remaining"] == "0"
        assert exc.headers["RateLimit-Limit"] == "10"
        assert exc.headers["RateLimit-Reset"] == exc.headers["Retry-After"]
        # another IP is not affected; other requests from this IP are not limited by it
        await guard.check("create", basic("u11"), "10.0.0.2")
        for _ in range(20):
            await guard.check("request", basic("u0"), "10.0.0.1")


@pytest.mark.gen_test
async def test_window_resets_when_the_clock_moves_on(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url, FakeClock(6_000_000.0)) as inst:
        guard = inst.guard(ip_creations_per_minute=2, basic_creations_per_minute=0)
        await guard.check("create", basic(), "ip")
        inst.clock.advance(30)
        headers = await guard.check("create", basic(), "ip")
        assert headers["RateLimit-Reset"] == "30"
        with pytest.raises(errors.RateLimited) as info:
            await guard.check("create", basic(), "ip")
        assert info.value.headers["Retry-After"] == "30"
        inst.clock.advance(30)
        headers = await guard.check("create", basic(), "ip")
        assert headers["RateLimit-Remaining"] == "1" and headers["RateLimit-Reset"] == "60"


@pytest.mark.gen_test
async def test_tier_creation_rate_per_user(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard()
        for i in range(10):
            await guard.check("create", basic("bo"), f"10.1.0.{i}")
        with pytest.raises(errors.RateLimited) as info:
            await guard.check("create", basic("bo"), "10.1.1.1")
        assert "10 upload creations per minute per user of tier basic" in info.value.message
        for _ in range(60):
            await guard.check("create", premium("pat"), "10.2.0.1")
        with pytest.raises(errors.RateLimited) as info:
            await guard.check("create", premium("pat"), "10.2.0.2")
        assert "60 upload creations per minute per user of tier premium" in info.value.message


@pytest.mark.gen_test
async def test_ip_limit_on_all_requests(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard(ip_requests_per_minute=5)
        for _ in range(5):
            await guard.check("request", None, "10.3.0.1")
        with pytest.raises(errors.RateLimited) as info:
            await guard.check("request", basic(), "10.3.0.1")
        assert "5 requests per minute per IP address" in info.value.message


@pytest.mark.gen_test
async def test_admin_is_not_rate_limited(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard(ip_requests_per_minute=1)
        admin = Principal(user="root", tier="admin")
        for _ in range(30):
            assert await guard.check("create", admin, "10.4.0.1") == {}
        slots = [await guard.open_stream(admin, "10.4.0.1") for _ in range(30)]
        for slot in slots:
            await slot.release()


# --- stream slots ----------------------------------------------------------------


@pytest.mark.gen_test
async def test_basic_user_gets_five_streams(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard()
        slots = [await guard.open_stream(basic(), "ip") for _ in range(5)]
        with pytest.raises(errors.ConcurrencyLimited) as info:
            await guard.open_stream(basic(), "ip")
        exc = info.value
        assert exc.status == 429 and "tier basic allows 5 uploads in progress" in exc.message
        assert int(exc.headers["Retry-After"]) >= 1
        other = await guard.open_stream(basic("someone-else"), "ip")
        await slots[0].release()
        await slots[0].release()  # idempotent: frees one slot, not two
        slots[0] = await guard.open_stream(basic(), "ip")
        with pytest.raises(errors.ConcurrencyLimited):
            await guard.open_stream(basic(), "ip")
        for slot in [*slots, other]:
            await slot.release()
        assert guard.streams == 0


@pytest.mark.gen_test
async def test_premium_user_gets_twenty_streams(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard()
        slots = [await guard.open_stream(premium(), "ip") for _ in range(20)]
        with pytest.raises(errors.ConcurrencyLimited) as info:
            await guard.open_stream(premium(), "ip")
        assert "tier premium allows 20" in info.value.message
        for slot in slots:
            await slot.release()


@pytest.mark.gen_test
async def test_server_wide_stream_cap(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard(max_streams=3)
        slots = [await guard.open_stream(basic(f"s{i}"), "ip") for i in range(3)]
        with pytest.raises(errors.ServerBusy) as info:
            await guard.open_stream(basic("s9"), "ip")
        assert info.value.status == 503 and "Retry-After" in info.value.headers
        assert "at most 3 uploads stream at once" in info.value.message
        await slots.pop().release()
        slots.append(await guard.open_stream(basic("s9"), "ip"))
        for slot in slots:
            await slot.release()


@pytest.mark.gen_test
async def test_refused_stream_does_not_hold_a_server_slot(backend: str, redis_url: str) -> None:
    async with instances(backend, redis_url) as inst:
        guard = inst.guard(max_streams=2, basic_concurrency=1)
        slot = await guard.open_stream(basic(), "ip")
        for _ in range(3):
            with pytest.raises(errors.ConcurrencyLimited):
                await guard.open_stream(basic(), "ip")
        assert guard.streams == 1
        await slot.release()


@pytest.mark.gen_test
async def test_live_stream_lease_is_refreshed(backend: str, redis_url: str) -> None:
    """The heartbeat keeps a held slot alive past its TTL (re-adding it if it lapsed)."""
    async with instances(backend, redis_url) as inst:
        guard = inst.guard(basic_concurrency=1, lease_ttl=0.3)
        slot = await guard.open_stream(basic(), "ip")
        inst.clock.advance(10)  # far past the TTL: only a refresh can make it live again

        async def live() -> bool:
            return await guard.leases.count("alice", inst.clock()) == 1

        await eventually(live, what="the heartbeat to refresh the lease")
        with pytest.raises(errors.ConcurrencyLimited):
            await guard.open_stream(basic(), "ip")
        await slot.release()
        assert await guard.leases.count("alice", inst.clock()) == 0


# --- the lease stores themselves -------------------------------------------------


@contextlib.asynccontextmanager
async def lease_store(backend: str, redis_url: str) -> AsyncIterator[LeaseStore]:
    if backend == "memory":
        yield MemoryLeaseStore()
        return
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield RedisLeaseStore(client, f"t{secrets.token_hex(4)}:")
    finally:
        await client.aclose()


@pytest.mark.gen_test
async def test_unrefreshed_lease_lapses_after_ttl(backend: str, redis_url: str) -> None:
    """A crashed holder stops refreshing: its slot comes back after the TTL."""
    async with lease_store(backend, redis_url) as store:
        now = 1_000.0
        assert await store.acquire("u", "a", 2, now, 30.0)
        assert await store.acquire("u", "b", 2, now + 10, 30.0)
        assert not await store.acquire("u", "c", 2, now + 29, 30.0)
        assert await store.count("u", now + 29) == 2
        assert await store.count("u", now + 30) == 1  # "a" lapsed exactly at its expiry
        assert await store.acquire("u", "c", 2, now + 30, 30.0)
        await store.refresh([("u", "b"), ("u", "c")], now + 35, 30.0)
        assert await store.count("u", now + 64) == 2
        await store.release("u", "b")
        await store.release("u", "b")
        assert await store.count("u", now + 64) == 1
        assert await store.count("nobody", now) == 0


@pytest.mark.gen_test
async def test_refresh_re_adds_a_lapsed_lease(backend: str, redis_url: str) -> None:
    async with lease_store(backend, redis_url) as store:
        assert await store.acquire("u", "a", 1, 0.0, 1.0)
        assert await store.count("u", 5.0) == 0
        await store.refresh([("u", "a")], 5.0, 1.0)
        assert await store.count("u", 5.5) == 1
        assert not await store.acquire("u", "b", 1, 5.5, 1.0)


# --- Redis: shared between instances, failures --------------------------------------


@pytest.mark.gen_test
async def test_two_instances_share_limits_on_redis(redis_url: str) -> None:
    async with instances("redis", redis_url) as inst:
        one, two = inst.guard(), inst.guard()
        slots = [await one.open_stream(basic(), "ip") for _ in range(3)]
        slots += [await two.open_stream(basic(), "ip") for _ in range(2)]
        for guard in (one, two):
            with pytest.raises(errors.ConcurrencyLimited):
                await guard.open_stream(basic(), "ip")
        for i in range(5):
            await one.check("create", basic(f"c{i}"), "10.9.0.1")
            await two.check("create", basic(f"d{i}"), "10.9.0.1")
        with pytest.raises(errors.RateLimited):
            await one.check("create", basic("late"), "10.9.0.1")
        for slot in slots:
            await slot.release()


@pytest.mark.gen_test
async def test_crashed_instance_lease_lapses_on_redis(redis_url: str) -> None:
    async with instances("redis", redis_url) as inst:
        dead, alive = (
            inst.guard(basic_concurrency=1, lease_ttl=30),
            inst.guard(basic_concurrency=1, lease_ttl=30),
        )
        slot: StreamSlot = await dead.open_stream(basic(), "ip")
        assert slot is not None
        # the instance "crashes": its heartbeat stops and it never releases
        assert dead._heartbeat is not None
        dead._heartbeat.cancel()
        dead._held.clear()
        with pytest.raises(errors.ConcurrencyLimited):
            await alive.open_stream(basic(), "ip")
        inst.clock.advance(31)
        await (await alive.open_stream(basic(), "ip")).release()


@pytest.mark.gen_test
async def test_redis_down_is_a_503(redis_url: str) -> None:
    from tests.services import free_port

    async with instances("redis", f"redis://127.0.0.1:{free_port()}/0") as inst:
        guard = inst.guard()
        with pytest.raises(errors.StateStoreError) as info:
            await guard.check("create", basic(), "ip")
        assert info.value.status == 503 and "Retry-After" in info.value.headers
        with pytest.raises(errors.StateStoreError):
            await guard.open_stream(basic(), "ip")
        assert guard.streams == 0
