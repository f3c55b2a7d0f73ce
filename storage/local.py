"""Local-disk storage.

Layout under ``<data_dir>/uploads/``: one file per upload named by its id,
holding exactly the bytes received so far (``durable_offset`` = file size).
A completed plain upload is already in place, so completion never copies it;
concatenation assembles partials into the final's file with
``os.copy_file_range`` (kernel copies, no Python buffers) in an executor.

Writes of one request chunk (bounded by the server's read size) happen on the
event loop, like the bare ``stream_request_body`` handler this server is
measured against; fsyncs, which may take seconds, run in an executor. The
fsync policy is ``never``, ``on_complete`` (default) or ``every_patch``; with
the last two, a file being written is also flushed in the background every
``WRITEBACK_BYTES`` (own two-thread pool), so the fsync at completion does not
have to write the whole upload out after its last byte arrived.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from storage.base import Capability
from tusd_py.core import errors, protocol
from tusd_py.core.models import UploadInfo
from tusd_py.core.splice import Pipe, SpliceStep, splice_step

READ_BLOCK = 1 << 20
#: With an fsync policy other than ``never``, an upload being written is
#: flushed in the background every this many bytes (see LocalWriter). Small
#: enough that the disk writes while bytes still arrive: 20 concurrent 50 MiB
#: uploads never reached the former 64 MiB and all waited for their whole file
#: at completion (1.4x their throughput with 8 MiB, tests/bench/RESULTS.md).
WRITEBACK_BYTES = 8 << 20
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
#: Threads running splice steps (:meth:`LocalWriter.splice_from`) at once;
#: a step lasts at most its budget (a fraction of a second), more queue.
SPLICE_THREADS = 16


def os_error(operation: str, exc: OSError) -> errors.TusError:
    """The storage error for ``exc`` raised during ``operation`` (ENOSPC → 507)."""
    if exc.errno in _NO_SPACE:
        return errors.InsufficientStorage(f"disk full during {operation}; the bytes before it were kept")
    return errors.StorageError(f"local storage failed during {operation}: {exc.strerror}")


@contextlib.contextmanager
def map_os_errors(operation: str) -> Iterator[None]:
    """Translate ``OSError`` into storage errors (see :func:`os_error`)."""
    try:
        yield
    except OSError as exc:
        raise os_error(operation, exc) from exc


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalWriter:
    """Appends to one upload file at a fixed starting offset.

    With a ``writeback`` pool, each time the file's size crosses a multiple
    of ``writeback_bytes`` (default ``WRITEBACK_BYTES``; counted from the
    file offset ``start``, so a run of small PATCHes flushes as often as one
    big one) an ``fdatasync`` of a duplicate of the fd is queued on it (at
    most one running per writer), so the kernel writes the file out while
    more bytes arrive and the fsync that makes the upload durable
    (``on_complete``/``every_patch``) has only the tail left.

    A queued or running flush keeps its own fd: with ``fsync``, ``close``
    waits for it and reports its error; without, ``close`` returns at once
    and a later failure goes to ``on_flush_error`` (the storage then refuses
    to complete the upload). A flush that already failed is reported by close.
    """

    def __init__(
        self,
        fd: int,
        fsync: bool,
        writeback: concurrent.futures.Executor | None = None,
        writeback_bytes: int = 0,
        *,
        start: int = 0,
        on_flush_error: Callable[[OSError], None] | None = None,
        datasync: Callable[[int], None] = os.fdatasync,
        splicer: concurrent.futures.Executor | None = None,
    ) -> None:
        self._fd: int | None = fd
        self._fsync = fsync
        self._written = 0
        self._writeback = writeback
        self._writeback_bytes = writeback_bytes or WRITEBACK_BYTES
        self._unflushed = start % self._writeback_bytes
        self._flushing: concurrent.futures.Future[None] | None = None
        self._on_flush_error = on_flush_error
        self._datasync = datasync
        self._splicer = splicer
        self._pipe: Pipe | None = None

    @property
    def written(self) -> int:
        """Bytes this writer has stored so far (also after a failed write)."""
        return self._written

    async def write(self, chunk: bytes) -> None:
        fd = self._fd
        if fd is None:
            raise errors.StorageError("write after close")
        view = memoryview(chunk)
        with map_os_errors("write"):
            while view:
                n = os.write(fd, view)
                self._written += n
                view = view[n:]
        self._wrote(fd, len(chunk))

    @property
    def can_splice(self) -> bool:
        """True if :meth:`splice_from` may be used (open, with a splice pool)."""
        return self._splicer is not None and self._fd is not None

    async def splice_from(self, sock: int, count: int, *, budget: float, grace: float) -> SpliceStep:
        """Move up to ``count`` bytes from socket ``sock`` into the file with
        ``splice(2)`` in the splice pool (one bounded step, see
        :func:`tusd_py.core.splice.splice_step`). The stored bytes count as
        written; a file error is returned in the step, not raised."""
        fd = self._fd
        if fd is None or self._splicer is None:
            raise errors.StorageError("splice after close")
        if self._pipe is None:
            with map_os_errors("pipe"):
                self._pipe = Pipe()
        loop = asyncio.get_running_loop()
        step = await loop.run_in_executor(
            self._splicer, splice_step, sock, fd, self._pipe, count, budget, grace
        )
        self._written += step.stored
        self._wrote(fd, step.stored)
        return step

    def _wrote(self, fd: int, n: int) -> None:
        if self._writeback is not None:
            self._unflushed += n
            if self._unflushed >= self._writeback_bytes and (self._flushing is None or self._flushing.done()):
                self._unflushed %= self._writeback_bytes
                self._start_flush(fd)

    def _start_flush(self, fd: int) -> None:
        assert self._writeback is not None
        previous = self._flushing
        if previous is not None and not previous.cancelled() and previous.exception() is not None:
            return  # reported by close
        dup = os.dup(fd)
        try:
            flushing = self._writeback.submit(self._flush, dup)
        except RuntimeError:  # pool shut down: the final fsync does it all
            os.close(dup)
            return
        # A flush cancelled before it ran (pool shut down) never closes its fd.
        flushing.add_done_callback(lambda f: os.close(dup) if f.cancelled() else None)
        self._flushing = flushing

    def _flush(self, fd: int) -> None:
        try:
            self._datasync(fd)
        finally:
            os.close(fd)

    def _report_late(self, future: concurrent.futures.Future[None]) -> None:
        exc = None if future.cancelled() else future.exception()
        if isinstance(exc, OSError) and self._on_flush_error is not None:
            self._on_flush_error(exc)

    async def close(self) -> int:
        fd, self._fd = self._fd, None
        if self._pipe is not None:
            pipe, self._pipe = self._pipe, None
            pipe.close()
        if fd is not None:
            try:
                flushing, self._flushing = self._flushing, None
                if flushing is not None and not flushing.cancelled():
                    if flushing.done() or self._fsync:
                        with map_os_errors("fsync"):
                            await asyncio.wrap_future(flushing)
                    else:
                        flushing.add_done_callback(self._report_late)
                if self._fsync:
                    with map_os_errors("fsync"):
                        await asyncio.get_running_loop().run_in_executor(None, os.fsync, fd)
            finally:
                os.close(fd)
        return self._written


class LocalStorage:
    """Uploads as files under ``<data_dir>/uploads``."""

    name: ClassVar[str] = "disk"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TERMINATE,
            Capability.CONCATENATE,
            Capability.DECLARE_LENGTH,
            Capability.SERVE_CONTENT,
            Capability.HOST_OFFSET,
        }
    )

    def __init__(self, data_dir: Path, fsync: str = "on_complete") -> None:
        self.root = Path(data_dir) / "uploads"
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = os.fspath(self.root)
        self._fsync = fsync
        #: Background fdatasyncs of LocalWriter (own threads, so a queue of them
        #: never delays the default executor's reads and fsyncs).
        self._writeback = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="tusd-writeback")
        #: Splice steps of LocalWriter (zero-copy appends, :mod:`tusd_py.zerocopy`).
        self._splicer = concurrent.futures.ThreadPoolExecutor(
            SPLICE_THREADS, thread_name_prefix="tusd-splice"
        )
        #: upload id → error of a background flush that failed after its
        #: writer closed (set from a writeback thread; the upload cannot complete).
        self._flush_failures: dict[str, str] = {}

    def path(self, upload_id: str) -> Path:
        """The file of ``upload_id``; the id is validated (no traversal)."""
        return Path(self.file_name(upload_id))

    def file_name(self, upload_id: str) -> str:
        """:meth:`path` as a string (what the per-request system calls take,
        without building a ``Path``); the id is validated (no traversal)."""
        if not protocol.is_valid_upload_id(upload_id):
            raise errors.UploadNotFound()
        return f"{self._root}/{upload_id}"

    async def create(self, info: UploadInfo) -> Mapping[str, str]:
        with map_os_errors("create"):
            fd = os.open(self.file_name(info.id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            os.close(fd)
        return {}

    async def open_writer(self, info: UploadInfo) -> LocalWriter:
        with map_os_errors("open"):
            fd = os.open(self.file_name(info.id), os.O_WRONLY | os.O_CREAT, 0o640)
            try:
                os.lseek(fd, info.offset, os.SEEK_SET)
            except OSError:
                os.close(fd)
                raise
        writeback = self._writeback if self._fsync != "never" else None
        upload_id = info.id

        def failed(exc: OSError) -> None:
            self._flush_failures[upload_id] = exc.strerror or str(exc)

        return LocalWriter(
            fd,
            fsync=self._fsync == "every_patch",
            writeback=writeback,
            start=info.offset,
            on_flush_error=failed,
            splicer=self._splicer,
        )

    async def durable_offset(self, info: UploadInfo) -> int:
        try:
            return os.stat(self.file_name(info.id)).st_size
        except FileNotFoundError:
            return 0

    async def finish(self, info: UploadInfo) -> Mapping[str, str]:
        failure = self._flush_failures.get(info.id)
        if failure is not None:
            raise errors.StorageError(
                f"local storage failed during a background flush of upload {info.id}: {failure}"
            )
        if self._fsync == "on_complete":
            with map_os_errors("fsync"):
                await asyncio.get_running_loop().run_in_executor(None, _fsync_path, self.path(info.id))
        return dict(info.storage_meta)

    async def declare_length(self, info: UploadInfo, length: int) -> Mapping[str, str]:
        return dict(info.storage_meta)

    async def terminate(self, info: UploadInfo) -> None:
        self._flush_failures.pop(info.id, None)
        with map_os_errors("terminate"), contextlib.suppress(FileNotFoundError):
            os.unlink(self.file_name(info.id))

    async def begin_concatenate(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> Mapping[str, str]:
        """Nothing to prepare: the final's own meta."""
        return dict(final.storage_meta)

    async def concatenate(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> Mapping[str, str]:
        target = self.path(final.id)
        sources = [self.path(p.id) for p in partials]
        with map_os_errors("concatenate"):
            await asyncio.get_running_loop().run_in_executor(
                None, _concat_files, target, sources, self._fsync != "never"
            )
        return {}

    async def read(self, info: UploadInfo, start: int, end: int) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        with map_os_errors("open for read"):
            fd = os.open(self.file_name(info.id), os.O_RDONLY)
        try:
            position = start
            while position <= end:
                size = min(READ_BLOCK, end - position + 1)
                with map_os_errors("read"):
                    block = await loop.run_in_executor(None, os.pread, fd, size, position)
                if not block:
                    raise errors.StorageError(f"upload {info.id} is shorter than recorded")
                position += len(block)
                yield block
        finally:
            os.close(fd)

    async def ping(self) -> None:
        with map_os_errors("ping"):
            if not os.access(self.root, os.W_OK):
                raise errors.StorageError(f"{self.root} is not writable")

    async def close(self) -> None:
        self._writeback.shutdown(wait=False, cancel_futures=True)
        if self._splicer is not None:
            self._splicer.shutdown(wait=False, cancel_futures=True)


def _concat_files(target: Path, sources: Sequence[Path], fsync: bool) -> None:
    """Write ``sources`` one after another into ``target`` with kernel copies."""
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        position = 0
        for source in sources:
            src = os.open(source, os.O_RDONLY)
            try:
                remaining = os.fstat(src).st_size
                offset_in = 0
                while remaining > 0:
                    try:
                        n = os.copy_file_range(src, out, remaining, offset_in, position)
                    except OSError as exc:
                        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                            raise
                        os.lseek(out, position, os.SEEK_SET)
                        n = os.sendfile(out, src, offset_in, remaining)
                    if n == 0:
                        raise OSError(errno.EIO, f"short copy from {source}")
                    offset_in += n
                    position += n
                    remaining -= n
            finally:
                os.close(src)
        if fsync:
            os.fsync(out)
    finally:
        os.close(out)
