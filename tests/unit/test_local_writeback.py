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

from storage.local import LocalWriter
from tusd_py import errors

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
    assert set(pool.submitted) == {os.fdatasync}


def test_no_pool_no_flush(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    writer = LocalWriter(open_fd(path), fsync=False)

    async def run() -> int:
        await writer.write(b"x" * (200 * KIB))
        return await writer.close()

    assert asyncio.run(run()) == 200 * KIB


def test_close_drops_a_flush_that_has_not_started(tmp_path: Path) -> None:
    blocker = threading.Event()
    executor = CountingPool()
    executor.submit(blocker.wait, 30)  # occupies the only thread
    try:
        writer = LocalWriter(
            open_fd(tmp_path / "upload"), fsync=False, writeback=executor, writeback_bytes=KIB
        )

        async def run() -> concurrent.futures.Future[None] | None:
            await writer.write(b"y" * (2 * KIB))
            queued = writer._flushing
            await asyncio.wait_for(writer.close(), 10)
            return queued

        queued = asyncio.run(run())
        assert queued is not None and queued.cancelled()
    finally:
        blocker.set()
        executor.shutdown(wait=True)


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
