"""Parts shared by the lockers: wake-ups for requests waiting on a lock held
in another process (file and Redis), and the holder's once-per-hold release
callback (every locker: the one implementation of a release request)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("tusd_py.app")


class FreeWaiters:
    """Per-upload sets of events set when the upload's lock becomes free."""

    def __init__(self) -> None:
        self._events: dict[str, set[asyncio.Event]] = {}

    def add(self, upload_id: str) -> asyncio.Event:
        """A new event, set at the next :meth:`notify` for ``upload_id``."""
        event = asyncio.Event()
        self._events.setdefault(upload_id, set()).add(event)
        return event

    def remove(self, upload_id: str, event: asyncio.Event) -> None:
        """Forget ``event`` (the waiter gave up or got the lock)."""
        events = self._events.get(upload_id)
        if events is not None:
            events.discard(event)
            if not events:
                del self._events[upload_id]

    def notify(self, upload_id: str) -> None:
        """Wake every waiter of ``upload_id``."""
        for event in self._events.get(upload_id, ()):
            event.set()


class ReleaseCallback:
    """A holder's ``on_release_requested``, run at most once per hold (the
    one implementation of a release request, for the memory, file and Redis
    locks: each reaches its holder through ``holder.release_requests.request()``)."""

    def __init__(self, upload_id: str) -> None:
        self.upload_id = upload_id
        self._callback: Callable[[], None] | None = None
        self._asked = False

    def arm(self, callback: Callable[[], None]) -> None:
        """A new hold begins: ``callback`` may run once."""
        self._callback = callback
        self._asked = False

    def disarm(self) -> None:
        """The hold ended: later requests do nothing."""
        self._callback = None

    def request(self) -> None:
        """Ask the holder to stop: runs the callback unless already asked or
        not holding. A failing callback is logged, never raised (it must not
        break the listener or the requester that delivered the request)."""
        if self._asked or self._callback is None:
            return
        self._asked = True
        try:
            self._callback()
        except Exception:
            log.exception("release callback of upload %s failed", self.upload_id)
