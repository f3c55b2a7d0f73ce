"""Wake-ups for requests waiting on a lock held elsewhere (shared by the
lockers whose "lock is free" news arrives from outside the process)."""

from __future__ import annotations

import asyncio


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
