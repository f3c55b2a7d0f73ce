"""Kernel-side copies from a socket into a file: ``splice(2)`` through a pipe.

:func:`splice_step` runs in a worker thread (never on the IOLoop). It moves
bytes socket → pipe → file, at most :data:`PIPE_BYTES` at a time, so they are
never copied into Python. One call is bounded in time (``budget`` seconds)
and in bytes (``count``); it returns early when the socket stays empty for
``grace`` seconds, so the caller (on the loop) sees progress at least every
``budget`` seconds and waits for readability itself when the client pauses.

Guarantees of a :class:`SpliceStep`: ``stored`` bytes were appended to the
file at its current position, in order, and nothing else was written;
``taken`` bytes were read from the socket (``taken - stored`` > 0 only after a
file error: those bytes were in the pipe and are dropped; the caller still
counts them as read, so the request's framing stays exact).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

#: Bytes moved per splice call (the pipe is grown to this size when allowed).
PIPE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class SpliceStep:
    """What one :func:`splice_step` did (see module doc)."""

    taken: int
    stored: int
    #: The socket reached its end, was reset or refused splice: stop splicing
    #: (Tornado's own reading takes over and finds out which).
    eof: bool = False
    #: The file refused a write; the ``stored`` bytes before it are in the file.
    error: OSError | None = None


@runtime_checkable
class SpliceWriter(Protocol):
    """A chunk writer that can take body bytes straight from a socket
    (:class:`storage.local.LocalWriter`, the S3 writer's part spool)."""

    @property
    def can_splice(self) -> bool:
        """True while :meth:`splice_from` may be called."""

    async def splice_from(self, sock: int, count: int, *, budget: float, grace: float) -> SpliceStep:
        """One bounded :func:`splice_step` into the writer's file; the stored
        bytes count as written."""


class Pipe:
    """A pipe used as the in-kernel buffer of :func:`splice_step`; close it when done."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # EPERM above pipe-max-size: keep the default size
            fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def splice_step(sock: int, fd: int, pipe: Pipe, count: int, budget: float, grace: float) -> SpliceStep:
    """Move up to ``count`` bytes from socket ``sock`` (non-blocking) into file ``fd``.

    Ends when ``count`` bytes are stored, after ``budget`` seconds, when the
    socket has had nothing for ``grace`` seconds, at EOF, or at a file error.
    The pipe is empty when this returns (except after a file error).
    """
    deadline = time.monotonic() + budget
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLRDHUP)
    taken = stored = 0
    while stored < count:
        try:
            n = os.splice(sock, pipe.write_fd, min(PIPE_BYTES, count - stored), flags=os.SPLICE_F_MOVE)
        except BlockingIOError:
            wait = min(grace, deadline - time.monotonic())
            if wait <= 0 or not poller.poll(wait * 1000):
                break
            continue
        except OSError:
            # Reset, or a socket splice does not support: Tornado's own
            # reading takes over and finds out which.
            return SpliceStep(taken, stored, eof=True)
        if n == 0:
            return SpliceStep(taken, stored, eof=True)
        taken += n
        try:
            stored += _drain_pipe(pipe, fd, n)
        except _ShortWrite as short:
            return SpliceStep(taken, stored + short.stored, error=short.error)
        if time.monotonic() >= deadline:
            break
    return SpliceStep(taken, stored)


class _ShortWrite(Exception):
    def __init__(self, stored: int, error: OSError) -> None:
        super().__init__(str(error))
        self.stored = stored
        self.error = error


def _drain_pipe(pipe: Pipe, fd: int, n: int) -> int:
    """Move ``n`` bytes from the pipe into ``fd``; raises :class:`_ShortWrite`."""
    stored = 0
    while stored < n:
        try:
            m = os.splice(pipe.read_fd, fd, n - stored, flags=os.SPLICE_F_MOVE)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise _ShortWrite(stored, exc) from exc
            m = _copy_from_pipe(pipe, fd, n - stored, stored)  # a file system without splice
        if m == 0:
            raise _ShortWrite(stored, OSError(errno.EIO, "short write"))
        stored += m
    return stored


def _copy_from_pipe(pipe: Pipe, fd: int, n: int, before: int) -> int:
    """Copy ``n`` bytes from the pipe into ``fd`` through Python (fallback)."""
    data = os.read(pipe.read_fd, n)
    view = memoryview(data)
    done = 0
    while done < len(data):
        try:
            done += os.write(fd, view[done:])
        except OSError as exc:
            raise _ShortWrite(before + done, exc) from exc
    return len(data)
