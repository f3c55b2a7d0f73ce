"""Process life cycle shared by handlers: draining state and live streams."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("tusd_py.app")


class Lifecycle:
    """Tracks request bodies streaming now and whether the server drains.

    While ``draining`` is set, new uploads are refused with 503; ``wait_idle``
    lets shutdown wait for in-flight bodies. Background tasks started by
    handlers (e.g. saving an interrupted upload) are kept here so shutdown
    can await them and they are never garbage-collected mid-flight; a task
    that fails has its exception retrieved and logged. Tasks that wait (e.g.
    a later reconciliation) wait with :meth:`wait_draining`, so shutdown
    never waits for their timers.
    """

    def __init__(self) -> None:
        self._draining = asyncio.Event()
        self.active_streams = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[object]] = set()
        self._cutters: dict[int, Callable[[str], None]] = {}
        self._next_token = 0

    @property
    def draining(self) -> bool:
        """True once shutdown began (new uploads are refused)."""
        return self._draining.is_set()

    @draining.setter
    def draining(self, value: bool) -> None:
        if value:
            self._draining.set()
        else:
            self._draining.clear()

    async def wait_draining(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; True as soon as draining begins."""
        try:
            await asyncio.wait_for(self._draining.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def stream_started(self, cut: Callable[[str], None]) -> int:
        """Count a body stream; ``cut(reason)`` stops it on shutdown. Returns a token."""
        self._next_token += 1
        self._cutters[self._next_token] = cut
        self.active_streams += 1
        self._idle.clear()
        return self._next_token

    def stream_ended(self, token: int) -> None:
        if self._cutters.pop(token, None) is None:
            return
        self.active_streams = max(0, self.active_streams - 1)
        if self.active_streams == 0:
            self._idle.set()

    def cut_all(self, reason: str) -> int:
        """Stop every body stream still open (their bytes are kept)."""
        cutters = list(self._cutters.values())
        for cut in cutters:
            cut(reason)
        return len(cutters)

    async def wait_idle(self, timeout: float) -> bool:
        """True if every stream ended within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def spawn(self, awaitable: Awaitable[object]) -> asyncio.Task[object]:
        """Run ``awaitable`` in the background, tracked until done."""
        task: asyncio.Task[object] = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("background task failed: %s: %s", type(exc).__name__, exc, exc_info=exc)

    async def join_tasks(self, timeout: float) -> None:
        """Wait (bounded) for background tasks to finish."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
