"""``ReleaseGate``: when a release request may cut the request holding a lock.

SPEC "Locking": a PATCH or DELETE that finds an upload locked asks the holder
to release it. The holder is cut (stops reading, saves its bytes, unlocks)
only once its client has sent nothing for ``server.release_idle`` seconds: a
client reconnecting after a dead link gets in as soon as the dead request has
been silent that long, and a live writer is never cut, so of several
concurrent PATCHes at one offset exactly one wins (the others wait for the
lock and then get 409, or 423 after ``lock_timeout``).

The gate is the callback a session's lock runs on a release request. Lockers
run that callback at most once per hold, so from the first request on the
gate watches the holder for the rest of the hold and cuts it as soon as it
has been idle long enough. A body chunk being stored counts as activity
(slow storage is not an idle client). A lock that may be lost (its backend
failing, its lease run out) is given up at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tusd_py.locking.base import Lock


class ReleaseGate:
    """Delays a release request until the holder's client is idle.

    ``cut`` is the holder's own reaction to a release request (the handler
    stops reading its body); it is called at most once. The holder's session
    calls :meth:`begin_write` / :meth:`end_write` around each chunk it stores
    and :meth:`close` when it ends (which cancels any pending cut).
    """

    def __init__(self, cut: Callable[[], None], idle: float) -> None:
        self._cut = cut
        self._idle = idle
        self._lock: Lock | None = None
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._busy = 0
        self._done = False
        self._timer: asyncio.TimerHandle | None = None

    def held_by(self, lock: Lock) -> None:
        """Record the lock whose health decides an immediate cut; restarts the
        idle clock (the holder's request has just been admitted)."""
        self._lock = lock
        self._last = self._loop.time()

    def requested(self) -> None:
        """The lock's ``on_release_requested`` callback."""
        if self._done or self._timer is not None:
            return  # already watching the holder
        self._check()

    def begin_write(self) -> None:
        """A body chunk arrived and is being stored."""
        self._busy += 1
        self._last = self._loop.time()

    def end_write(self) -> None:
        """That chunk is stored (or failed)."""
        self._busy = max(0, self._busy - 1)
        self._last = self._loop.time()

    def close(self) -> None:
        """The hold ended: never cut."""
        self._done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._done:
            return
        now = self._loop.time()
        lock = self._lock
        if lock is not None and (lock.backend_failing() or not lock.still_held()):
            self._fire()  # the lock may be lost: stop writing at once
            return
        if self._idle <= 0 or (self._busy == 0 and now - self._last >= self._idle):
            self._fire()
            return
        due = now + self._idle if self._busy else self._last + self._idle
        self._timer = self._loop.call_at(max(due, now), self._check)

    def _fire(self) -> None:
        self.close()
        self._cut()
