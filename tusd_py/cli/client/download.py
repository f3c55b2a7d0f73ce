"""``tusd-py download``: fetch a complete upload, resuming an interrupted download with Range.

Bytes go to ``<target>.part`` as they arrive (streamed in blocks, never held
whole) and the file is renamed to ``<target>`` once every byte is there. The
resume store remembers which URL a ``.part`` file belongs to (key
:func:`~tusd_py.cli.client.resume_store.download_key`), so a ``.part`` left by a
download of something else is never extended. A run that finds a matching
``.part`` asks only for the missing bytes (``Range: bytes=N-``) and checks the
answer's ``Content-Range``; a server that ignores Range (200) makes it start
over. Redirects (e.g. to a presigned S3 URL) are followed, without the token
when they leave the server's origin. Network errors and 5xx/429 are retried
with the same backoff as uploads.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import BinaryIO, cast
from urllib.parse import urljoin, urlsplit

from tusd_py.cli.client.errors import (
    MISSING_UPLOAD_ADVICE,
    Cancelled,
    ClientError,
    HttpStatusError,
    PermanentError,
    TransportError,
    UploadMissing,
)
from tusd_py.cli.client.progress import FileProgress, Reporter
from tusd_py.cli.client.resume_store import ResumeStore, download_key
from tusd_py.cli.client.retry import BackoffPolicy, Disposition, RetryBudget, classify
from tusd_py.cli.client.transport import Response
from tusd_py.cli.client.tus import TusSession, status_error
from tusd_py.cli.client.uploader import Clock, Retrier

_BLOCK = 1 << 20
_MAX_REDIRECTS = 5
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]")


@dataclass(frozen=True)
class DownloadResult:
    path: str
    size: int
    received: int
    resumed_from: int


def safe_name(name: str, fallback: str) -> str:
    """A harmless local file name from server-provided metadata."""
    base = _UNSAFE.sub("_", os.path.basename(name.replace("\\", "/"))).strip(" .")
    return base[:200] or fallback


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


class Download:
    """One download of ``url`` (a tus upload URL) to a local path."""

    def __init__(
        self,
        session: TusSession,
        url: str,
        output: str | None,
        *,
        store: ResumeStore,
        reporter: Reporter,
        policy: BackoffPolicy,
        clock: Clock,
        cancel: threading.Event,
    ) -> None:
        self.session = session
        self.url = url
        self.output = output
        self.store = store
        self.reporter = reporter
        self.policy = policy
        self.clock = clock
        self.cancel = cancel

    def run(self) -> DownloadResult:
        upload_id = self.url.rstrip("/").rsplit("/", 1)[-1]
        probe = FileProgress(self.reporter, self.output or upload_id, 0)
        try:
            status = Retrier(self.policy, self.clock, probe).call(
                lambda: self.session.head(self.url), f"looking up {self.url}"
            )
        except UploadMissing as exc:
            raise PermanentError.from_status(exc, f"looking up {self.url}", MISSING_UPLOAD_ADVICE) from None
        if not status.complete or status.length is None:
            raise PermanentError(
                f"{self.url} is not complete yet ({status.offset} of {status.length} bytes). "
                "What to do: wait until the upload finishes (see `tusd-py status`), then download again."
            )
        length = status.length
        target = self._target(status.metadata.get("filename", ""), upload_id)
        part_path = target + ".part"
        key = download_key(self.url, target)
        entry = self.store.get(key)
        progress = FileProgress(self.reporter, target, length)
        offset = 0
        if entry and entry.get("length") == length and os.path.exists(part_path):
            offset = min(os.path.getsize(part_path), length)
        else:
            self.store.put(key, {"url": self.url, "length": length, "part": part_path})
        mode = "r+b" if offset and os.path.exists(part_path) else "wb"
        try:
            handle = cast(BinaryIO, open(part_path, mode))  # closed below
        except OSError as exc:
            raise ClientError(f"cannot write {part_path}: {exc.strerror}") from exc
        resumed_from = offset
        try:
            handle.truncate(offset)
            handle.seek(offset)
            progress.event("start", size=length, parts=1)
            if offset:
                progress.event("resume", url=self.url, offset=offset)
            progress.acked(0, offset)
            offset = self._fetch(handle, offset, length, progress)
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as exc:
            raise ClientError(f"cannot write {part_path}: {exc.strerror}") from exc
        finally:
            handle.close()
        try:
            os.replace(part_path, target)
        except OSError as exc:
            raise ClientError(f"cannot rename {part_path} to {target}: {exc.strerror}") from exc
        self.store.delete(key)
        progress.finish()
        progress.event("done", url=self.url, size=length, sent=length - resumed_from)
        return DownloadResult(target, length, length - resumed_from, resumed_from)

    def _target(self, filename: str, upload_id: str) -> str:
        name = safe_name(filename, upload_id) if filename else safe_name(upload_id, "download")
        if self.output is None:
            return name
        if os.path.isdir(self.output):
            return os.path.join(self.output, name)
        return self.output

    def _fetch(self, handle: BinaryIO, offset: int, length: int, progress: FileProgress) -> int:
        budget = RetryBudget(self.policy)
        retrier = Retrier(self.policy, self.clock, progress)
        what = f"downloading {self.url}"
        while offset < length:
            if self.cancel.is_set():
                raise Cancelled()
            before = offset
            try:
                offset = self._receive(self._get(offset), handle, offset, length, progress)
            except HttpStatusError as exc:
                if classify(exc.status) is Disposition.PERMANENT:
                    raise PermanentError.from_status(exc, what) from None
                retrier.wait(budget, str(exc), exc.status, exc.code, exc.retry_after, what)
            except TransportError as exc:
                offset = handle.tell()
                if offset > before:
                    budget.progressed()
                progress.acked(0, offset)
                retrier.wait(budget, str(exc), None, None, None, what)
        return offset

    def _get(self, offset: int) -> Response:
        url = self.url
        origin = _origin(url)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        for _ in range(_MAX_REDIRECTS + 1):
            if _origin(url) == origin:
                response = self.session.get(url, headers)
            else:
                response = self.session.transport.request("GET", url, headers)
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                location = response.headers.get("Location") or ""
                response.read()
                url = urljoin(url, location)
                continue
            return response
        raise PermanentError(f"too many redirects downloading {self.url}")

    def _receive(
        self, response: Response, handle: BinaryIO, offset: int, length: int, progress: FileProgress
    ) -> int:
        if response.status == 416 and offset >= length:
            response.read()
            return length
        if response.status == 200:
            if offset:
                handle.seek(0)
                handle.truncate(0)
                offset = 0
                progress.acked(0, 0)
        elif response.status == 206:
            match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
            if match is None or int(match.group(1)) != offset or int(match.group(3)) != length:
                response.close()
                raise TransportError(
                    f"unexpected Content-Range {response.headers.get('Content-Range')!r} for bytes={offset}-"
                )
        else:
            raise status_error(response, "GET", self.url)
        for block in response.iter_blocks(_BLOCK):
            if offset + len(block) > length:
                response.close()
                raise TransportError(f"the server sent more than the upload's {length} bytes")
            handle.write(block)
            offset += len(block)
            progress.sent(0, len(block))
        progress.acked(0, offset)
        if offset < length:
            raise TransportError(f"GET {self.url}: the response ended at byte {offset} of {length}")
        return offset
