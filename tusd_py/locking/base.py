"""The ``Locker`` seam: one writer per upload, with release requests.

Semantics follow tusd v2: a request that wants a lock held by another asks
the holder to release it (the holder's ``on_release_requested`` callback is
invoked once; the holder stops reading its body, saves what it has and
releases), then waits up to ``timeout`` seconds. Implementations (memory,
Redis) pass ``tests/contract/test_locker.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Lock(Protocol):
    """A lock on one upload id, used by one request."""

    async def acquire(self, timeout: float, on_release_requested: Callable[[], None]) -> None:
        """Take the lock, asking a current holder to release it.

        Raises :class:`tusd_py.core.errors.LockTimeout` (423, Retry-After) when it
        is still held after ``timeout`` seconds. ``on_release_requested`` is
        called (on the event loop, at most once) if another request asks us to
        release while we hold it.
        """

    async def try_acquire(self, on_release_requested: Callable[[], None]) -> bool:
        """Take the lock only if nobody holds it, without asking a holder to
        release (background work such as startup reconciliation must not cut
        live uploads). True if taken; then held exactly as after ``acquire``."""

    def still_held(self) -> bool:
        """True while held and surely still ours: False before acquiring, after
        release, and once a lease may have run out unrenewed (Redis). A holder
        checks it before writing, so it never writes after a takeover."""

    def backend_failing(self) -> bool:
        """True when the holder is asked to stop because the lock's backend
        cannot keep the lease (Redis unreachable), not because another
        request wants the upload: the holder then answers 503, not 400."""

    async def release(self) -> None:
        """Release the lock if held by us; idempotent, never raises for a lost lock."""


@runtime_checkable
class Locker(Protocol):
    """Factory of per-upload locks."""

    def new_lock(self, upload_id: str) -> Lock:
        """A new, unacquired lock for ``upload_id``."""

    async def close(self) -> None:
        """Release resources (connections, heartbeats); idempotent."""
