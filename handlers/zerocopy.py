"""Zero-copy appends: a request body spliced from the socket into the upload file.

For a tus PATCH (or a creation with a body) whose body is large, the
streaming handler (``handlers.streaming.StreamingHandler``) offers the
connection a :class:`SplicedBody` once the upload is locked. The
connection (:class:`handlers.httpconn.DrainingConnection`) then reads the
body in three phases, all within Tornado's framing (``Content-Length``):

1. **copy** — the first :data:`HEAD_BYTES` of an upload (none for a body
   at a later offset) and whatever Tornado's IOStream already buffered go
   through ``data_received`` as always (so the file-type inspector sees the
   first bytes, and no buffered byte is lost: the head was read in
   :data:`handlers.httpconn.HEAD_READ_SIZE` pieces, so that is at most one
   such piece); between these reads the socket is off the IOLoop, so an idle IOStream
   does not read ahead into its buffer;
2. **splice** — the socket is taken off the IOLoop and :meth:`SplicedBody.run`
   moves the rest with ``splice(2)`` socket → pipe → file in bounded steps in
   worker threads (:mod:`tusd_py.core.splice`), through
   :meth:`tusd_py.core.append.AppendSession.append_spliced`: the lock is checked
   and the offset published as for copied bytes; between steps the loop
   waits for the socket to be readable (never blocking);
3. **rest** — if splicing stopped early (client gone, error, cut) Tornado's
   own reading takes over for what is left of ``Content-Length``: it finds
   the EOF, drains a refused body, or stops at the closed connection.

After a complete body the connection goes back to Tornado (keep-alive); the
next request registers the socket on the IOLoop again.

Anything that answers the request while a step runs waits for it: the
handler's cut (network timeout, release request, shutdown) calls
:meth:`SplicedBody.stop`, which ends splicing and runs the cut once no step
is in a thread (at most :data:`STEP_BUDGET` seconds later, at once when the
client is idle). After a file error the bytes taken from the socket but not
stored are counted as read (the framing stays exact), so the refused rest is
drained as on the copying path; the offset counts only stored bytes.

Each spliced body logs a ``ZeroCopyAppend`` event (debug level) with the
bytes spliced.

Not spliced (the copying path): TLS, chunked bodies, ``Upload-Checksum``,
bodies a handler transforms (multipart ``POST /index``),
IETF draft requests (interim responses while reading), bodies under
:data:`MIN_BODY`, writers whose ``can_splice`` is False (the local phase of an
S3-routed upload of deferred length from its switch to S3 on: the byte that
crosses the threshold is copied, see :mod:`storage.s3_splice`), and
``server.zero_copy = false``. S3-routed bodies are spliced into the part
spool.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from tusd_py.core import errors
from tusd_py.core.append import SNIFF_BYTES, AppendSession

log = logging.getLogger("tusd_py.zerocopy")

#: Bodies shorter than this are copied (splicing has a fixed cost per request).
MIN_BODY = 256 << 10
#: Bytes of every body that go through the copying path first (>= the sniff).
HEAD_BYTES = max(64 << 10, SNIFF_BYTES)
#: Longest one splice step runs in its thread (seconds): bounds how stale
#: progress, idleness and a cut can be.
STEP_BUDGET = 0.25
#: A step ends once the socket has been empty this long (seconds); the loop
#: then waits for it to be readable instead of a thread.
STEP_GRACE = 0.05


def step_limit(progress_interval: float, release_idle: float) -> float:
    """The longest splice step that keeps the copying path's promises: offsets
    published every ``progress_interval`` and a writer that sends never taken
    for idle by a release request after ``release_idle`` (progress is seen
    only between steps)."""
    limit = min(STEP_BUDGET, progress_interval)
    return min(limit, release_idle / 2) if release_idle > 0 else limit


class SplicedBody:
    """The rest of one request body, to be spliced into its session's writer.

    ``on_moved(n)``: ``n`` more bytes were stored (activity, metrics).
    ``max_step``: a step lasts at most this long (and at most
    :data:`STEP_BUDGET`); see :func:`step_limit`.
    ``on_error(error)``: storing failed; the handler answers ``error``.
    Both are called on the loop, never while a step runs.
    """

    def __init__(
        self,
        session: AppendSession,
        *,
        on_moved: Callable[[int], None],
        on_error: Callable[[errors.TusError], None],
        max_step: float = STEP_BUDGET,
    ) -> None:
        self.session = session
        self._budget = min(STEP_BUDGET, max_step)
        self._grace = min(STEP_GRACE, self._budget)
        self.min_body = MIN_BODY
        #: Copied first: the inspector's bytes; none past an upload's start.
        self.head_bytes = HEAD_BYTES if session.sniffing else 0
        #: Bytes stored by splicing (not counting the copied head).
        self.spliced = 0
        self._on_moved = on_moved
        self._on_error = on_error
        self._active = False
        self._stopping = False
        self._then: list[Callable[[], None]] = []
        self._wake: asyncio.Future[None] | None = None

    def ready(self) -> bool:
        """True if splicing may start now (see :meth:`AppendSession.can_splice`)."""
        return not self._stopping and self.session.can_splice()

    def stop(self, then: Callable[[], None]) -> bool:
        """End splicing for good. If a splice is running, ``then`` is called on
        the loop once no step is in a thread and True is returned; otherwise
        False is returned and the caller goes on itself."""
        self._stopping = True
        if not self._active:
            return False
        self._then.append(then)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        return True

    async def run(self, sock: int, count: int, on_taken: Callable[[int], None]) -> int:
        """Splice up to ``count`` body bytes from socket ``sock`` (off the
        IOLoop's watch). Returns how many bytes were taken from the socket;
        ``on_taken(n)`` is told after each step, before anything else runs."""
        self._active = True
        taken = 0
        # Our own descriptor of the socket: a close of the connection while a
        # step runs cannot hand the thread a reused descriptor number.
        sock = os.dup(sock)
        try:
            while taken < count and not self._stopping and self.session.can_splice():
                try:
                    step = await self.session.append_spliced(
                        sock, count - taken, budget=self._budget, grace=self._grace
                    )
                except errors.TusError as exc:  # before any byte moved (lost lock, ...)
                    self._on_error(exc)
                    break
                taken += step.taken
                on_taken(step.taken)
                self.spliced += step.stored
                if step.stored:
                    self._on_moved(step.stored)
                failure = self.session.failure
                if failure is not None:
                    self._on_error(failure)
                    break
                if step.eof:
                    break
                if taken < count:
                    await self._readable(sock)
        finally:
            os.close(sock)
            self._active = False
            then, self._then = self._then, []
            log.debug(
                "spliced %d of %d body bytes of upload %s",
                self.spliced,
                count,
                self.session.info.id,
                extra={"event": "ZeroCopyAppend", "upload_id": self.session.info.id, "spliced": self.spliced},
            )
            for callback in then:
                callback()
        return taken

    async def _readable(self, sock: int) -> None:
        """Wait until ``sock`` is readable or :meth:`stop` is called."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not wake.done():
                wake.set_result(None)

        self._wake = wake
        loop.add_reader(sock, readable)
        try:
            await wake
        finally:
            loop.remove_reader(sock)
            self._wake = None
