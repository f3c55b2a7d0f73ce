"""The implementations the contract suites run against.

To add an implementation, write a small backend class below and add it to
:data:`STATE_BACKENDS` or :data:`LOCKER_BACKENDS`; every contract test then
runs against it. A backend is one shared store (one Redis key prefix, one
SQLite file, ...): ``open()`` returns a new view onto it, as a second server
process would have (its own connections), so tests can race several views.
In-process implementations return the same object from every ``open()``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from tusd_py.locking.base import Locker
from tusd_py.locking.file import FileLocker
from tusd_py.locking.memory import MemoryLocker
from tusd_py.locking.redis import RedisLocker
from tusd_py.state.base import StateStore
from tusd_py.state.memory import MemoryStateStore
from tusd_py.state.redis import RedisStateStore
from tusd_py.state.sqlite import SQLiteStateStore


@dataclass
class Env:
    """What a backend may need; ``redis_url()`` starts redis-server lazily."""

    tmp_path: Path
    redis_url: Callable[[], str]


class _RedisKeys:
    """A unique key prefix per test on the shared test Redis, removed after."""

    def __init__(self, env: Env) -> None:
        self.url = env.redis_url()
        self.prefix = f"contract-{uuid.uuid4().hex[:12]}:"
        self.clients: list[aioredis.Redis] = []

    def client(self) -> aioredis.Redis:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=2.0, socket_timeout=5.0)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        if self.clients:
            client = self.clients[0]
            keys = [k async for k in client.scan_iter(match=self.prefix + "*", count=500)]
            if keys:
                await client.delete(*keys)
        for client in self.clients:
            await client.aclose()


# --- state stores ---------------------------------------------------------------


class StateBackend:
    """One shared state store; ``open()`` gives a new view of it."""

    #: Views share data through an external service or file (not one object).
    shared = False

    async def open(self) -> StateStore:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class MemoryStateBackend(StateBackend):
    def __init__(self, env: Env) -> None:
        self.store = MemoryStateStore()

    async def open(self) -> StateStore:
        return self.store


class SQLiteStateBackend(StateBackend):
    shared = True

    def __init__(self, env: Env) -> None:
        self.path = env.tmp_path / "contract-state.db"
        self.stores: list[SQLiteStateStore] = []

    async def open(self) -> StateStore:
        store = await SQLiteStateStore.open(self.path)
        self.stores.append(store)
        return store

    async def close(self) -> None:
        for store in self.stores:
            await store.close()


class RedisStateBackend(StateBackend):
    shared = True

    def __init__(self, env: Env) -> None:
        self.keys = _RedisKeys(env)

    async def open(self) -> StateStore:
        return RedisStateStore(self.keys.client(), self.keys.prefix)

    async def close(self) -> None:
        await self.keys.close()


STATE_BACKENDS: dict[str, Callable[[Env], StateBackend]] = {
    "memory": MemoryStateBackend,
    "sqlite": SQLiteStateBackend,
    "redis": RedisStateBackend,
}


# --- lockers ------------------------------------------------------------------------


class LockerBackend:
    """One shared lock space; ``open()`` gives another instance's locker."""

    shared = False
    #: Lock lifetime without heartbeat (0: locks die only with their process).
    ttl = 0.0
    #: Whether :meth:`plant_dead_holder` can simulate a holder that died.
    can_die = False

    async def open(self) -> Locker:
        raise NotImplementedError

    async def plant_dead_holder(self, upload_id: str) -> None:
        """Leave ``upload_id`` locked by a holder that died (killed process:
        no heartbeat, no listener, never released)."""
        raise NotImplementedError

    async def close(self) -> None:
        return None


class MemoryLockerBackend(LockerBackend):
    def __init__(self, env: Env) -> None:
        self.locker = MemoryLocker()

    async def open(self) -> Locker:
        return self.locker


class RedisLockerBackend(LockerBackend):
    shared = True
    #: Short for fast expiry tests, long enough that a loaded machine's event
    #: loop stalls do not let a heartbeat miss it.
    ttl = 1.5
    can_die = True

    def __init__(self, env: Env) -> None:
        self.keys = _RedisKeys(env)
        self.lockers: list[RedisLocker] = []

    async def open(self) -> Locker:
        locker = RedisLocker(self.keys.client(), self.keys.prefix, ttl=self.ttl, ask_interval=0.2)
        self.lockers.append(locker)
        return locker

    async def plant_dead_holder(self, upload_id: str) -> None:
        client = self.keys.client()
        key = RedisLocker(client, self.keys.prefix).lock_key(upload_id)
        assert await client.set(key, "dead-holder", nx=True, px=int(self.ttl * 1000))

    async def close(self) -> None:
        for locker in self.lockers:
            await locker.close()
        await self.keys.close()


_HOLD_AND_HANG = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"@tusd-py-lock-gone-0 deadbeef")
print("held", flush=True)
time.sleep(60)
"""


class FileLockerBackend(LockerBackend):
    """Host-local flock locks: each ``open()`` is another worker process's locker."""

    shared = True
    can_die = True

    def __init__(self, env: Env) -> None:
        self.directory = env.tmp_path / "locks"
        self.lockers: list[FileLocker] = []

    async def open(self) -> Locker:
        locker = FileLocker(self.directory, ask_interval=0.2)
        self.lockers.append(locker)
        return locker

    async def plant_dead_holder(self, upload_id: str) -> None:
        path = FileLocker(self.directory).path(upload_id)
        proc = subprocess.Popen([sys.executable, "-c", _HOLD_AND_HANG, str(path)], stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line.strip() == b"held"
        finally:
            proc.kill()  # kill -9: the kernel drops its flock
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()

    async def close(self) -> None:
        for locker in self.lockers:
            await locker.close()


LOCKER_BACKENDS: dict[str, Callable[[Env], LockerBackend]] = {
    "memory": MemoryLockerBackend,
    "redis": RedisLockerBackend,
    "file": FileLockerBackend,
}
