"""The resumable upload loop: one byte range of a file to one tus upload URL.

:class:`RangeUploader` keeps one invariant: a byte is sent only at an offset
the server confirmed (HEAD or the previous PATCH's ``Upload-Offset``). So it
never re-sends acknowledged bytes, whatever happens to the link::

    HEAD -> offset
    loop:  PATCH [offset, offset+chunk) with Expect: 100-continue
           204 -> offset = Upload-Offset
           409 -> HEAD at once (first time), then like a retry
           network error, timeout, 5xx, 423, 429, 460
               -> wait (backoff + jitter, >= Retry-After), HEAD, continue
           anything else -> PermanentError (status, server's code and message, advice)

The retry budget counts consecutive failures while the server's offset does
not move (:class:`~tusd_py.cli.client.retry.RetryBudget`). Time and sleeping go
through an injected :class:`Clock`, the network through a
:class:`~tusd_py.cli.client.transport.Transport`; a shared ``threading.Event``
cancels every loop of a command (Ctrl-C, or another part failed).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import zlib
from collections.abc import Callable
from typing import Protocol, TypeVar

from tusd_py.cli.client.errors import (
    Cancelled,
    GaveUp,
    HttpStatusError,
    PermanentError,
    TransportError,
    UploadMissing,
)
from tusd_py.cli.client.progress import FileProgress
from tusd_py.cli.client.retry import BackoffPolicy, Disposition, RetryBudget, classify
from tusd_py.cli.client.tus import TusSession

T = TypeVar("T")
_HASH_BLOCK = 1 << 20
CHECKSUM_ALGORITHMS = ("sha256", "sha512", "sha1", "md5", "crc32")


class Clock(Protocol):
    """Time for the retry loops."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; raises :class:`Cancelled` if cancelled meanwhile."""
        ...


class SystemClock:
    """Real time; sleeping wakes up early (raising :class:`Cancelled`) when ``cancel`` is set."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(max(0.0, seconds)):
            raise Cancelled()


class FileSlice:
    """Bytes ``[start, start+length)`` of an open file, read with ``os.pread`` block by block.

    Reading checks ``cancel`` so a cancelled upload stops mid-body.
    """

    def __init__(self, fd: int, start: int, length: int, cancel: threading.Event | None = None) -> None:
        self.fd = fd
        self.start = start
        self.length = length
        self._position = 0
        self._cancel = cancel

    def read(self, size: int) -> bytes:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled()
        size = min(size, self.length - self._position)
        if size <= 0:
            return b""
        data = os.pread(self.fd, size, self.start + self._position)
        self._position += len(data)
        return data


def checksum_header(fd: int, start: int, length: int, algorithm: str) -> str:
    """``Upload-Checksum`` of bytes ``[start, start+length)`` (read in blocks, never whole)."""
    position, end = start, start + length
    if algorithm == "crc32":
        value = 0
        while position < end:
            block = os.pread(fd, min(_HASH_BLOCK, end - position), position)
            if not block:
                break
            value = zlib.crc32(block, value)
            position += len(block)
        digest = value.to_bytes(4, "big")
    else:
        hasher = hashlib.new(algorithm, usedforsecurity=False)
        while position < end:
            block = os.pread(fd, min(_HASH_BLOCK, end - position), position)
            if not block:
                break
            hasher.update(block)
            position += len(block)
        digest = hasher.digest()
    return f"{algorithm} {base64.b64encode(digest).decode('ascii')}"


class Retrier:
    """Runs one request with retries (for creation, OPTIONS, concatenation, HEAD of a final)."""

    def __init__(
        self, policy: BackoffPolicy, clock: Clock, progress: FileProgress, part: int | None = None
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.progress = progress
        self.part = part

    def call(self, action: Callable[[], T], what: str) -> T:
        """``action()``, retried on network errors and retryable statuses.

        Raises :class:`PermanentError` (with ``what`` in the message),
        :class:`UploadMissing` (passed through) or :class:`GaveUp`.
        """
        budget = RetryBudget(self.policy)
        while True:
            try:
                return action()
            except UploadMissing:
                raise
            except HttpStatusError as exc:
                if classify(exc.status) is Disposition.PERMANENT:
                    raise PermanentError.from_status(exc, what) from None
                self.wait(budget, str(exc), exc.status, exc.code, exc.retry_after, what)
            except TransportError as exc:
                self.wait(budget, str(exc), None, None, None, what)

    def wait(
        self,
        budget: RetryBudget,
        reason: str,
        status: int | None,
        code: str | None,
        retry_after: float | None,
        what: str,
    ) -> None:
        """Count a failure, then sleep before the next try, or raise :class:`GaveUp`."""
        attempt = budget.failed()
        if budget.exhausted:
            raise GaveUp(
                f"{what} failed: gave up after {attempt} attempts without progress; last error: {reason}. "
                "What to do: check the network and the server, then run the same command again to resume."
            )
        delay = self.policy.delay(attempt, retry_after)
        fields: dict[str, object] = {
            "attempt": attempt,
            "delay": round(delay, 3),
            "status": status,
            "code": code,
            "reason": reason,
        }
        if retry_after is not None:
            fields["retry_after"] = retry_after
        if self.part is not None:
            fields["part"] = self.part
        self.progress.event("retry", **fields)
        self.clock.sleep(delay)


class RangeUploader:
    """Sends bytes ``[start, start+length)`` of ``fd`` to the tus upload at ``url``, resuming."""

    def __init__(
        self,
        session: TusSession,
        *,
        policy: BackoffPolicy,
        clock: Clock,
        progress: FileProgress,
        chunk_size: int,
        checksum: str | None = None,
        cancel: threading.Event | None = None,
        part: int | None = None,
    ) -> None:
        self.session = session
        self.policy = policy
        self.clock = clock
        self.progress = progress
        self.chunk_size = chunk_size
        self.checksum = checksum
        self.cancel = cancel
        self.part = part
        self.sent = 0
        self._retrier = Retrier(policy, clock, progress, part)

    def _fields(self, **fields: object) -> dict[str, object]:
        if self.part is not None:
            fields["part"] = self.part
        return fields

    def _count(self, n: int) -> None:
        self.sent += n
        self.progress.sent(self.part or 0, n)

    def sync(self, url: str, length: int) -> int:
        """HEAD: the server's offset. Raises :class:`UploadMissing` for 404/410 and
        :class:`PermanentError` if the upload is not the one we think (other length)."""
        status = self.session.head(url)
        if status.length is not None and status.length != length:
            raise UploadMissing(
                409,
                message=f"the upload at {url} is {status.length} bytes long, the file part {length}",
                method="HEAD",
                url=url,
            )
        if status.offset is None:
            raise TransportError(f"HEAD {url} answered without Upload-Offset")
        return status.offset

    def run(self, url: str, fd: int, start: int, length: int, offset: int | None = None) -> None:
        """Upload until the server holds all ``length`` bytes. ``offset`` is a confirmed offset
        (e.g. 0 right after creation); None means ask the server first."""
        budget = RetryBudget(self.policy)
        key = self.part or 0
        high_water = -1
        resynced = False
        what = f"uploading {self.progress.file}"
        while True:
            if self.cancel is not None and self.cancel.is_set():
                raise Cancelled()
            try:
                if offset is None:
                    offset = self.sync(url, length)
                    self.progress.event("resync", **self._fields(offset=offset))
                self.progress.acked(key, offset, start)
                if offset > high_water:
                    if high_water >= 0:
                        budget.progressed()
                    high_water = offset
                if offset >= length:
                    return
                size = min(self.chunk_size, length - offset)
                body = FileSlice(fd, start + offset, size, self.cancel)
                digest = checksum_header(fd, start + offset, size, self.checksum) if self.checksum else None
                new_offset = self.session.patch(url, offset, body, checksum=digest, on_sent=self._count)
                if not offset < new_offset <= length:
                    raise TransportError(f"PATCH moved the offset from {offset} to {new_offset}")
                offset = new_offset
                resynced = False
                budget.progressed()
            except UploadMissing:
                raise
            except HttpStatusError as exc:
                offset = None
                disposition = classify(exc.status)
                if disposition is Disposition.PERMANENT:
                    raise PermanentError.from_status(exc, what) from None
                if disposition is Disposition.RESYNC and not resynced:
                    resynced = True  # the offset moved under us: re-read it at once, once
                    continue
                self._retrier.wait(budget, str(exc), exc.status, exc.code, exc.retry_after, what)
            except TransportError as exc:
                offset = None
                self._retrier.wait(budget, str(exc), None, None, None, what)
