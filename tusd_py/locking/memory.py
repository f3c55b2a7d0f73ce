"""In-process :class:`Locker` for a single server process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tusd_py.core import errors
from tusd_py.locking.waiters import ReleaseCallback


class _Holder:
    __slots__ = ("release_requests", "released")

    def __init__(self, upload_id: str, on_release_requested: Callable[[], None]) -> None:
        self.release_requests = ReleaseCallback(upload_id)
        self.release_requests.arm(on_release_requested)
        self.released = asyncio.Event()


class MemoryLock:
    """A lock on one upload id within this process."""

    def __init__(self, locker: MemoryLocker, upload_id: str) -> None:
        self._locker = locker
        self._upload_id = upload_id
        self._holder: _Holder | None = None

    async def acquire(self, timeout: float, on_release_requested: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        holders = self._locker.holders
        while True:
            current = holders.get(self._upload_id)
            if current is None:
                self._holder = _Holder(self._upload_id, on_release_requested)
                holders[self._upload_id] = self._holder
                return
            current.release_requests.request()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise errors.LockTimeout(retry_after=min(timeout, 5.0) or 1.0)
            try:
                await asyncio.wait_for(current.released.wait(), remaining)
            except TimeoutError:
                raise errors.LockTimeout(retry_after=min(timeout, 5.0) or 1.0) from None

    async def try_acquire(self, on_release_requested: Callable[[], None]) -> bool:
        if self._upload_id in self._locker.holders:
            return False
        self._holder = _Holder(self._upload_id, on_release_requested)
        self._locker.holders[self._upload_id] = self._holder
        return True

    def still_held(self) -> bool:
        return self._holder is not None

    def backend_failing(self) -> bool:
        return False

    async def release(self) -> None:
        holder, self._holder = self._holder, None
        if holder is None:
            return
        if self._locker.holders.get(self._upload_id) is holder:
            del self._locker.holders[self._upload_id]
        holder.release_requests.disarm()
        holder.released.set()


class MemoryLocker:
    """Locks shared by the requests of one process."""

    def __init__(self) -> None:
        self.holders: dict[str, _Holder] = {}

    def new_lock(self, upload_id: str) -> MemoryLock:
        return MemoryLock(self, upload_id)

    async def close(self) -> None:
        return None
