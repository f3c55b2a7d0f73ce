"""Upload one local file: find or create its upload(s), run the loops, concatenate.

The resume store entry of a file (key: :func:`~tusd_py.cli.client.resume_store.fingerprint`)::

    {"mode": "single", "url": U, "complete": bool}
    {"mode": "parallel", "parts": [{"start": S, "length": L, "url": U | null}, ...],
     "final_url": F | null, "complete": bool}

An upload URL is stored the moment the server creates it, so a process killed
at any point resumes on the next run. A stored upload the server no longer
knows (404/410: expired or removed) is forgotten and created again, once.
``--parallel N`` splits the file into N contiguous parts, each its own partial
upload (``Upload-Concat: partial``) with its own thread, connection and
resumable loop; when all are complete, a final upload concatenates them in
order. A changed part layout (another N) starts over.
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tusd_py.cli.client.errors import Cancelled, ClientError, PermanentError, UploadMissing
from tusd_py.cli.client.progress import FileProgress, Reporter
from tusd_py.cli.client.resume_store import ResumeStore, fingerprint
from tusd_py.cli.client.retry import BackoffPolicy
from tusd_py.cli.client.transport import Transport
from tusd_py.cli.client.tus import TusSession
from tusd_py.cli.client.uploader import Clock, RangeUploader, Retrier

#: Parts smaller than this are not worth a connection of their own.
MIN_PART = 256 * 1024


@dataclass(frozen=True)
class UploadOptions:
    """What ``tusd-py upload`` was asked to do (besides which files)."""

    endpoint: str
    token: str | None = None
    chunk_size: int = 64 << 20
    parallel: int = 1
    checksum: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)


@dataclass(frozen=True)
class UploadResult:
    file: str
    url: str
    size: int
    sent: int
    resumed: bool


def plan_parts(size: int, parallel: int) -> list[tuple[int, int]]:
    """``[(start, length)]`` of ``parallel`` contiguous parts (fewer if the file is small)."""
    count = max(1, min(parallel, size // MIN_PART))
    base, extra = divmod(size, count)
    parts, start = [], 0
    for index in range(count):
        length = base + (1 if index < extra else 0)
        parts.append((start, length))
        start += length
    return parts


class FileUpload:
    """One ``tusd-py upload`` file, from stat to the final URL."""

    def __init__(
        self,
        path: str,
        options: UploadOptions,
        *,
        store: ResumeStore,
        reporter: Reporter,
        transport_factory: Callable[[], Transport],
        clock: Clock,
        cancel: threading.Event,
    ) -> None:
        self.path = path
        self.options = options
        self.store = store
        self.reporter = reporter
        self.transport_factory = transport_factory
        self.clock = clock
        self.cancel = cancel
        self._transports: list[Transport] = []
        self._lock = threading.Lock()

    # --- entry point ---------------------------------------------------------

    def run(self) -> UploadResult:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise ClientError(f"{self.path}: cannot open: {exc.strerror}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ClientError(f"{self.path}: not a regular file")
            self.size = st.st_size
            self.key = fingerprint(self.path, st.st_size, st.st_mtime_ns, self.options.endpoint)
            self.progress = FileProgress(self.reporter, self.path, self.size)
            parts = plan_parts(self.size, self.options.parallel)
            self.progress.event("start", size=self.size, parts=len(parts))
            if self.options.checksum:
                self._check_checksum_support()
            if len(parts) == 1:
                url, resumed = self._single(fd)
            else:
                url, resumed = self._parallel(fd, parts)
            self._check_unchanged(st)
            self.store.update(self.key, lambda old: {**(old or {}), "complete": True})
            self.progress.finish()
            sent = self.progress.moved
            self.progress.event("done", url=url, size=self.size, sent=sent)
            return UploadResult(self.path, url, self.size, sent, resumed)
        finally:
            os.close(fd)
            for transport in self._transports:
                transport.close()

    # --- helpers ---------------------------------------------------------------

    def _check_unchanged(self, before: os.stat_result) -> None:
        """Raise if the file was modified while it was being sent (the upload may mix versions)."""
        try:
            after = os.stat(self.path)
        except OSError as exc:
            raise ClientError(f"{self.path}: vanished while uploading ({exc.strerror})") from exc
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            self.store.delete(self.key)
            raise ClientError(
                f"{self.path}: the file changed while it was being uploaded, so the upload may mix "
                "old and new bytes. What to do: run the command again to upload the current version."
            )

    def _session(self) -> TusSession:
        transport = self.transport_factory()
        with self._lock:
            self._transports.append(transport)
        return TusSession(transport, token=self.options.token)

    def _uploader(self, session: TusSession, part: int | None) -> RangeUploader:
        return RangeUploader(
            session,
            policy=self.options.policy,
            clock=self.clock,
            progress=self.progress,
            chunk_size=self.options.chunk_size,
            checksum=self.options.checksum,
            cancel=self.cancel,
            part=part,
        )

    def _retrier(self, part: int | None = None) -> Retrier:
        return Retrier(self.options.policy, self.clock, self.progress, part)

    def _metadata(self) -> dict[str, str]:
        metadata = {"filename": os.path.basename(self.path)}
        metadata.update(self.options.metadata)
        return metadata

    def _check_checksum_support(self) -> None:
        algorithm = self.options.checksum
        session = self._session()
        headers = self._retrier().call(
            lambda: session.options(self.options.endpoint), "asking the server (OPTIONS)"
        )
        extensions = [x.strip() for x in (headers.get("Tus-Extension") or "").split(",")]
        algorithms = [x.strip() for x in (headers.get("Tus-Checksum-Algorithm") or "").split(",")]
        if "checksum" not in extensions or algorithm not in algorithms:
            raise PermanentError(
                f"the server at {self.options.endpoint} does not support Upload-Checksum with {algorithm} "
                f"(it offers: {', '.join(a for a in algorithms if a) or 'none'}). "
                "What to do: pick one it offers with --checksum, or leave --checksum out."
            )

    def _resume(self, session: TusSession, url: str, length: int, part: int | None) -> int | None:
        """The server's offset of a stored upload, or None if it is gone (404/410/other length)."""
        uploader = self._uploader(session, part)
        try:
            offset = self._retrier(part).call(lambda: uploader.sync(url, length), f"resuming {self.path}")
        except UploadMissing as exc:
            self.reporter.message(
                f"{self.path}: stored upload {url} is gone ({exc.describe()}); starting again"
            )
            return None
        fields: dict[str, Any] = {"url": url, "offset": offset}
        if part is not None:
            fields["part"] = part
        self.progress.event("resume", **fields)
        return offset

    # --- one upload --------------------------------------------------------------

    def _single(self, fd: int) -> tuple[str, bool]:
        session = self._session()
        entry = self.store.get(self.key)
        url: str | None = None
        offset: int | None = None
        resumed = False
        if entry and entry.get("mode") == "single" and isinstance(entry.get("url"), str):
            url = entry["url"]
            offset = self._resume(session, url, self.size, None)
            resumed = offset is not None
            if offset is None:
                url = None
        for _ in range(2):
            if url is None:
                url = self._create(session, self.size, partial=False, part=None)
                self.store.put(self.key, {"mode": "single", "url": url, "complete": False})
                offset = 0
            try:
                self._uploader(session, None).run(url, fd, 0, self.size, offset)
                return url, resumed
            except UploadMissing as exc:
                self.reporter.message(
                    f"{self.path}: upload {url} disappeared ({exc.describe()}); starting again"
                )
                url, offset, resumed = None, None, False
        raise PermanentError(f"{self.path}: the server keeps losing the upload; giving up")

    def _create(self, session: TusSession, length: int, *, partial: bool, part: int | None) -> str:
        metadata = {} if partial else self._metadata()
        url = self._retrier(part).call(
            lambda: session.create(self.options.endpoint, length, metadata, partial=partial),
            f"creating the upload of {self.path}",
        )
        fields: dict[str, Any] = {"url": url}
        if part is not None:
            fields["part"] = part
        self.progress.event("created", **fields)
        return url

    # --- parallel parts ----------------------------------------------------------

    def _parallel(self, fd: int, plan: list[tuple[int, int]]) -> tuple[str, bool]:
        entry = self.store.get(self.key)
        layout = [[start, length] for start, length in plan]
        if not (
            entry
            and entry.get("mode") == "parallel"
            and [[p.get("start"), p.get("length")] for p in entry.get("parts", [])] == layout
        ):
            entry = {
                "mode": "parallel",
                "parts": [{"start": s, "length": n, "url": None} for s, n in plan],
                "final_url": None,
                "complete": False,
            }
            self.store.put(self.key, entry)
        resumed = any(p.get("url") for p in entry["parts"])
        stored_final = entry.get("final_url")
        if isinstance(stored_final, str):
            session = self._session()
            try:
                status = self._retrier().call(lambda: session.head(stored_final), f"checking {stored_final}")
                if status.complete:
                    for index, (start, length) in enumerate(plan):
                        self.progress.acked(index, length, start)
                    self.progress.event("resume", url=stored_final, offset=self.size)
                    return stored_final, True
            except UploadMissing:
                self.store.update(self.key, lambda old: {**(old or {}), "final_url": None})
        urls = self._run_parts(fd, plan, [p.get("url") for p in entry["parts"]])
        session = self._session()
        final_url = self._retrier().call(
            lambda: session.create_final(self.options.endpoint, urls, self._metadata()),
            f"concatenating the parts of {self.path}",
        )
        self.store.update(self.key, lambda old: {**(old or {}), "final_url": final_url})
        self.progress.event("created", url=final_url, parts=len(urls))
        status = self._retrier().call(lambda: session.head(final_url), f"checking {final_url}")
        if not status.complete:
            raise PermanentError(
                f"{self.path}: the server did not assemble the final upload {final_url} "
                f"(offset {status.offset} of {status.length}); run the command again"
            )
        return final_url, resumed

    def _run_parts(self, fd: int, plan: list[tuple[int, int]], stored: list[Any]) -> list[str]:
        urls: list[str] = [""] * len(plan)
        first_error: BaseException | None = None
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(plan), thread_name_prefix="part")
        try:
            futures = {
                pool.submit(self._run_part, fd, index, start, length, stored[index]): index
                for index, (start, length) in enumerate(plan)
            }
            for future in concurrent.futures.as_completed(futures):
                try:
                    urls[futures[future]] = future.result()
                except Cancelled:
                    continue
                except Exception as exc:  # re-raised below; the other parts are cancelled
                    if first_error is None:
                        first_error = exc
                        self.cancel.set()
        except BaseException:  # Ctrl-C in the main thread: stop every part, then leave
            self.cancel.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if first_error is not None:
            raise first_error
        if self.cancel.is_set():
            raise Cancelled()
        return urls

    def _run_part(self, fd: int, index: int, start: int, length: int, stored: Any) -> str:
        session = self._session()
        url: str | None = stored if isinstance(stored, str) else None
        offset: int | None = None
        if url is not None:
            offset = self._resume(session, url, length, index)
            if offset is None:
                url = None
        for _ in range(2):
            if url is None:
                url = self._create(session, length, partial=True, part=index)
                self.store.update(self.key, _with_part_url(index, url))
                offset = 0
            try:
                self._uploader(session, index).run(url, fd, start, length, offset)
                return url
            except UploadMissing as exc:
                self.reporter.message(
                    f"{self.path}: part {index} upload {url} disappeared ({exc.describe()})"
                )
                url, offset = None, None
        raise PermanentError(f"{self.path}: the server keeps losing part {index}; giving up")


def _with_part_url(index: int, url: str) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """A store update recording the URL of part ``index``."""

    def change(old: dict[str, Any] | None) -> dict[str, Any] | None:
        if old is None or old.get("mode") != "parallel":
            return old
        old["parts"][index]["url"] = url
        return old

    return change
