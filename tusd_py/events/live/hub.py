"""``LiveHub``: one process's fan-out of upload and job events to subscribers.

Publish API (the upload service through :class:`tusd_py.events.live.sink.LiveEventSink`,
and later the job queue and webhooks)::

    ctx.live.publish(user, {"type": "job.completed", "job_id": ..., "file_id": ...})

* ``user`` is the owner of what the event is about: subscribers of that user
  and admin subscribers (``user=None``) receive it; nobody else does.
* ``event`` is a JSON-able mapping with at least ``"type"``; ``"at"`` (RFC 3339)
  is added when missing; ``"upload_id"`` lets per-upload subscribers
  (SSE on ``/index-status/{id}``) select it.
* :meth:`LiveHub.publish` must be called on the IOLoop thread; it never blocks
  and never raises. From a worker thread call :meth:`LiveHub.publish_threadsafe`.
* ``upload.progress`` events are rate-limited per ``upload_id``: at most one
  every :data:`PROGRESS_INTERVAL` seconds; the latest one held back is sent when
  the window ends, so the last offset always arrives. Any other event about
  the upload (finished, terminated, ...) supersedes a held-back progress event.
* With a :class:`tusd_py.events.live.bridge.RedisBridge` attached, every published
  event also reaches the subscribers of the other instances.

Each :class:`Subscription` has a bounded queue: when it is full, its oldest
progress event is dropped (else its oldest event) and :attr:`Subscription.dropped`
counts it, so a slow reader never holds memory, the IOLoop or an upload.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from tusd_py.core.models import iso_time

log = logging.getLogger("tusd_py.app")

#: Seconds between two progress events of one upload (at most).
PROGRESS_INTERVAL = 0.25
#: Events a subscriber may have waiting before old ones are dropped.
QUEUE_SIZE = 256
#: Rate-limit slots kept before idle ones are pruned.
MAX_SLOTS = 4096

Event = dict[str, Any]


class Outbound(Protocol):
    """Where the hub sends published events besides local subscribers (the Redis bridge)."""

    def send(self, user: str, event: Event) -> None: ...

    async def start(self, deliver: Callable[[str, Event], None]) -> None: ...

    async def aclose(self) -> None: ...


class Subscription:
    """One reader's bounded queue of events, filtered by user and upload."""

    def __init__(self, user: str | None, upload_id: str | None, maxlen: int) -> None:
        #: None: every user's events (admins).
        self.user = user
        #: None: every upload's events.
        self.upload_id = upload_id
        #: Events dropped because the reader fell behind.
        self.dropped = 0
        self._maxlen = maxlen
        self._queue: deque[Event] = deque()
        self._progress = 0  # progress events in the queue
        self._wake = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, event: Event) -> None:
        """Queue ``event``; when full, drop the oldest progress event (else the oldest)."""
        if self._closed:
            return
        if len(self._queue) >= self._maxlen:
            self._drop_one()
        if event.get("type") == "upload.progress":
            self._progress += 1
        self._queue.append(event)
        self._wake.set()

    def _drop_one(self) -> None:
        self.dropped += 1
        if self._progress:
            for index, queued in enumerate(self._queue):
                if queued.get("type") == "upload.progress":
                    del self._queue[index]
                    self._progress -= 1
                    return
        if self._queue.popleft().get("type") == "upload.progress":
            self._progress -= 1

    def pending(self) -> int:
        return len(self._queue)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event; None after ``timeout`` seconds or once closed."""
        while not self._queue:
            if self._closed:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return None
        event = self._queue.popleft()
        if event.get("type") == "upload.progress":
            self._progress -= 1
        return event

    def close(self) -> None:
        """Wake the reader; :meth:`next` returns None from now on."""
        self._closed = True
        self._queue.clear()
        self._progress = 0
        self._wake.set()


class _Slot:
    __slots__ = ("handle", "last", "pending")

    def __init__(self, last: float) -> None:
        self.last = last
        self.pending: tuple[str, Event] | None = None
        self.handle: asyncio.TimerHandle | None = None


class LiveHub:
    """Fans events out to subscriptions of this process (see module docstring)."""

    def __init__(
        self,
        *,
        outbound: Outbound | None = None,
        queue_size: int = QUEUE_SIZE,
        progress_interval: float = PROGRESS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbound = outbound
        self._queue_size = queue_size
        self._interval = progress_interval
        self._clock = clock
        #: Subscriptions by (user, upload_id) they follow (None: any).
        self._subs: dict[tuple[str | None, str | None], set[Subscription]] = {}
        self._slots: dict[str, _Slot] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        #: Events handed to subscribers (for tests and metrics).
        self.delivered = 0

    async def start(self) -> None:
        """Bind to the running loop and start the outbound bridge, if any."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        if self.outbound is not None:
            await self.outbound.start(self.deliver)

    async def aclose(self) -> None:
        """Close every subscription, cancel held-back events, stop the bridge."""
        for slot in self._slots.values():
            if slot.handle is not None:
                slot.handle.cancel()
        self._slots.clear()
        for sub in self.subscriptions():
            sub.close()
        self._subs.clear()
        if self.outbound is not None:
            await self.outbound.aclose()

    # --- subscribers ---------------------------------------------------------

    def subscribe(self, user: str | None, upload_id: str | None = None) -> Subscription:
        """A new subscription to ``user``'s events (None: everyone's), optionally one upload's."""
        sub = Subscription(user, upload_id, self._queue_size)
        self._subs.setdefault((user, upload_id), set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.close()
        key = (sub.user, sub.upload_id)
        group = self._subs.get(key)
        if group is not None:
            group.discard(sub)
            if not group:
                del self._subs[key]

    @property
    def idle(self) -> bool:
        """True while a published event would reach nobody: no subscription in
        this process, no bridge to other instances, no progress event held
        back. Publishers may then skip building their message."""
        return self.outbound is None and not self._subs and not self._slots

    def subscriptions(self) -> tuple[Subscription, ...]:
        """The open subscriptions (for tests and diagnostics)."""
        return tuple(sub for group in self._subs.values() for sub in group)

    # --- publishers ----------------------------------------------------------

    def publish(self, user: str, event: Mapping[str, Any]) -> None:
        """Send ``event`` about ``user``'s data to subscribers here and elsewhere
        (nothing at all while :attr:`idle`)."""
        if self.idle:
            return
        try:
            self._publish(user, dict(event))
        except Exception:
            log.exception("live event %r dropped", event.get("type"))

    def publish_threadsafe(self, user: str, event: Mapping[str, Any]) -> None:
        """:meth:`publish` from any thread (a no-op before :meth:`start`)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        if threading.get_ident() == self._thread:
            self.publish(user, event)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.publish, user, dict(event))

    def deliver(self, user: str, event: Event) -> None:
        """Hand ``event`` to the matching local subscriptions only (the bridge's entry)."""
        upload_id = event.get("upload_id")
        keys: list[tuple[str | None, str | None]] = [(user, None), (None, None)]
        if isinstance(upload_id, str):
            keys += [(user, upload_id), (None, upload_id)]
        for key in keys:
            for sub in self._subs.get(key, ()):
                sub.offer(event)
                self.delivered += 1

    def _publish(self, user: str, event: Event) -> None:
        event.setdefault("at", iso_time(time.time()))
        upload_id = event.get("upload_id")
        if isinstance(upload_id, str):
            if event.get("type") == "upload.progress":
                if self._hold_back(upload_id, user, event):
                    return
            else:
                self._forget(upload_id)
        self._send(user, event)

    def _send(self, user: str, event: Event) -> None:
        self.deliver(user, event)
        if self.outbound is not None:
            self.outbound.send(user, event)

    def _hold_back(self, upload_id: str, user: str, event: Event) -> bool:
        """Rate limit: True when ``event`` waits for the end of its upload's window."""
        now = self._clock()
        slot = self._slots.get(upload_id)
        if slot is None:
            if len(self._slots) >= MAX_SLOTS:
                self._prune(now)
            self._slots[upload_id] = _Slot(now)
            return False
        wait = slot.last + self._interval - now
        if wait <= 0 and slot.handle is None:
            slot.last = now
            return False
        slot.pending = (user, event)
        if slot.handle is None:
            loop = asyncio.get_running_loop()
            slot.handle = loop.call_later(max(wait, 0.0), self._flush, upload_id)
        return True

    def _flush(self, upload_id: str) -> None:
        slot = self._slots.get(upload_id)
        if slot is None:
            return
        slot.handle = None
        pending, slot.pending = slot.pending, None
        slot.last = self._clock()
        if pending is not None:
            self._send(*pending)

    def _forget(self, upload_id: str) -> None:
        slot = self._slots.pop(upload_id, None)
        if slot is not None and slot.handle is not None:
            slot.handle.cancel()

    def _prune(self, now: float) -> None:
        """Forget every slot holding nothing back (amortised O(1) per publish; at
        worst one of those uploads gets one progress event early)."""
        idle = [key for key, slot in self._slots.items() if slot.handle is None]
        for key in idle:
            del self._slots[key]
