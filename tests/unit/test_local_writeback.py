"""``LocalWriter`` background writeback: flushes while writing, safe close."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.local import LocalStorage, LocalWriter
from tusd_py.core import errors
from tusd_py.core.models import UploadInfo

KIB = 1024


class CountingPool(concurrent.futures.ThreadPoolExecutor):
    """A real one-thread pool that records what was submitted."""

    def __init__(self) -> None:
        super().__init__(1)
        self.submitted: list[Callable[..., Any]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        self.submitted.append(fn)
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def pool() -> Iterator[CountingPool]:
    executor = CountingPool()
    yield executor
    executor.shutdown(wait=True, cancel_futures=True)


def open_fd(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)


def test_flushes_every_writeback_bytes_and_keeps_the_bytes(tmp_path: Path, pool: CountingPool) -> None:
    path = tmp_path / "upload"
    writer = LocalWriter(open_fd(path), fsync=False, writeback=pool, writeback_bytes=64 * KIB)
    chunks = [bytes([i]) * (16 * KIB) for i in range(12)]

    async def run() -> int:
        for chunk in chunks:
            await writer.write(chunk)
        return await writer.close()

    assert asyncio.run(run()) == 12 * 16 * KIB
    assert path.read_bytes() == b"".join(chunks)
    # 192 KiB in 16 KiB chunks with a flush every 64 KiB: one to three flushes
    # (a flush is skipped while the previous one still runs), all fdatasync.
    assert 1 <= len(pool.submitted) <= 3


def test_small_writers_flush_at_file_offsets_like_one_big_one(tmp_path: Path, pool: CountingPool) -> None:
    """A run of 8 KiB PATCHes (one writer each) flushes whenever the file
    crosses a multiple of 64 KiB, not never (each writer alone is too small)."""
    path = tmp_path / "upload"
    synced: list[int] = []

    def datasync(fd: int) -> None:
        synced.append(fd)
        os.fdatasync(fd)

    async def run() -> None:
        for i in range(24):
            writer = LocalWriter(
                open_fd(path), fsync=False, writeback=pool, writeback_bytes=64 * KIB, start=i * 8 * KIB,
                datasync=datasync,
            )  # fmt: skip
            os.lseek(writer._fd or 0, i * 8 * KIB, os.SEEK_SET)
            await writer.write(bytes([i]) * (8 * KIB))
            await writer.close()

    asyncio.run(run())
    pool.shutdown(wait=True)
    assert len(pool.submitted) == 3 and len(synced) == 3  # every queued flush ran
    assert path.read_bytes() == b"".join(bytes([i]) * (8 * KIB) for i in range(24))


def test_close_does_not_wait_for_a_running_flush(tmp_path: Path) -> None:
    """Without fsync, close returns while a flush runs; the flush keeps its own
    fd and a late failure goes to ``on_flush_error``."""
    started, release = threading.Event(), threading.Event()
    failures: list[OSError] = []

    def slow_failing_sync(fd: int) -> None:
        started.set()
        release.wait(30)
        os.fstat(fd)  # its own fd is still open after the writer closed
        raise OSError(errno.EIO, "Input/output error")

    executor = concurrent.futures.ThreadPoolExecutor(1)
    path = tmp_path / "upload"
    writer = LocalWriter(
        open_fd(path), fsync=False, writeback=executor, writeback_bytes=KIB,
        on_flush_error=failures.append, datasync=slow_failing_sync,
    )  # fmt: skip

    async def run() -> int:
        await writer.write(b"v" * (2 * KIB))
        assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        return await asyncio.wait_for(writer.close(), 10)

    try:
        assert asyncio.run(run()) == 2 * KIB
        assert failures == []
    finally:
        release.set()
        executor.shutdown(wait=True)
    assert [f.errno for f in failures] == [errno.EIO]
    assert path.read_bytes() == b"v" * (2 * KIB)


def test_no_pool_no_flush(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    writer = LocalWriter(open_fd(path), fsync=False)

    async def run() -> int:
        await writer.write(b"x" * (200 * KIB))
        return await writer.close()

    assert asyncio.run(run()) == 200 * KIB


def test_close_leaves_a_queued_flush_to_run(tmp_path: Path) -> None:
    blocker = threading.Event()
    executor = CountingPool()
    executor.submit(blocker.wait, 30)  # occupies the only thread
    synced: list[int] = []

    def datasync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)  # its own fd, open after the writer closed

    try:
        writer = LocalWriter(
            open_fd(tmp_path / "upload"), fsync=False, writeback=executor, writeback_bytes=KIB,
            datasync=datasync,
        )  # fmt: skip

        async def run() -> concurrent.futures.Future[None] | None:
            await writer.write(b"y" * (2 * KIB))
            queued = writer._flushing
            await asyncio.wait_for(writer.close(), 10)
            return queued

        queued = asyncio.run(run())
        assert queued is not None and not queued.done()
    finally:
        blocker.set()
        executor.shutdown(wait=True)
    assert queued.result() is None and synced == [2 * KIB]


class FailingPool(concurrent.futures.Executor):
    """Every submitted flush fails with EIO (a disk error)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_running_or_notify_cancel()
        future.set_exception(OSError(errno.EIO, "Input/output error"))
        return future


def test_a_failed_background_flush_is_reported_at_close(tmp_path: Path) -> None:
    fd = open_fd(tmp_path / "upload")
    writer = LocalWriter(fd, fsync=False, writeback=FailingPool(), writeback_bytes=KIB)

    async def run() -> None:
        await writer.write(b"z" * (2 * KIB))
        await writer.close()

    with pytest.raises(errors.StorageError):
        asyncio.run(run())
    with pytest.raises(OSError):
        os.fstat(fd)  # closed despite the error


def test_a_shut_down_pool_only_skips_the_flush(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    executor = concurrent.futures.ThreadPoolExecutor(1)
    executor.shutdown()
    writer = LocalWriter(open_fd(path), fsync=False, writeback=executor, writeback_bytes=KIB)

    async def run() -> int:
        await writer.write(b"w" * (4 * KIB))
        return await writer.close()

    assert asyncio.run(run()) == 4 * KIB
    assert path.read_bytes() == b"w" * (4 * KIB)


def test_storage_refuses_to_complete_after_a_failed_background_flush(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, fsync="on_complete")
    info = UploadInfo(id="a" * 32, owner="u", length=3, offset=3)

    async def run() -> None:
        await storage.create(info)
        writer = await storage.open_writer(info.replace(offset=0))
        assert writer._on_flush_error is not None
        writer._on_flush_error(OSError(errno.EIO, "Input/output error"))  # as a writeback thread would
        await writer.close()
        with pytest.raises(errors.StorageError, match="background flush"):
            await storage.finish(info)
        await storage.terminate(info)  # forgets the failure with the upload
        await storage.create(info)
        await storage.finish(info)

    try:
        asyncio.run(run())
    finally:
        asyncio.run(storage.close())


def test_a_flush_cancelled_by_pool_shutdown_is_dropped_without_leaking_its_fd(tmp_path: Path) -> None:
    blocker = threading.Event()
    executor = concurrent.futures.ThreadPoolExecutor(1)
    executor.submit(blocker.wait, 30)  # occupies the only thread
    fds_before = len(os.listdir("/proc/self/fd"))
    writer = LocalWriter(open_fd(tmp_path / "upload"), fsync=False, writeback=executor, writeback_bytes=KIB)

    async def run() -> int:
        await writer.write(b"u" * (2 * KIB))  # queues a flush behind the blocker
        executor.shutdown(wait=False, cancel_futures=True)  # the server stopping
        await writer.write(b"u" * (2 * KIB))  # a cancelled flush does not break writing
        return await writer.close()

    try:
        assert asyncio.run(run()) == 4 * KIB
    finally:
        blocker.set()
        executor.shutdown(wait=True)
    assert len(os.listdir("/proc/self/fd")) == fds_before
