"""Host-local :class:`Locker` for ``serve --workers N`` without Redis.

* A lock is ``flock(LOCK_EX)`` on ``<dir>/<id>.lock``. The kernel drops it
  when the holder's process dies, so a crashed worker never blocks anyone
  (no TTL needed). The holder writes ``<address> <token>`` into the file;
  on release it unlinks the file while still holding it, and a taker checks
  that the file it locked is still the one at the path (else it retries).
* Release requests: every locker (one per process) receives UNIX datagrams
  on an abstract socket ``<address>``. A waiter reads the holder's address
  and token from the lock file and sends ``release <id> <token>``; the
  holder's process runs that lock's ``on_release_requested`` (once per
  hold). Requests repeat every ``ask_interval`` while the same holder holds.
* Waiters poll with ``LOCK_NB`` (``poll_min`` doubling up to ``poll_max``
  seconds) and are woken at once by releases in their own process.

All file and socket calls are single, non-blocking, local syscalls, so they
run on the event loop. The directory must be on a local filesystem shared by
the workers of one host (flock over NFS is not dependable); several hosts
share uploads through Redis instead. Lock-directory failures raise
:class:`errors.StateStoreError` (503); ``release`` never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from tusd_py.core import errors
from tusd_py.locking.waiters import FreeWaiters, ReleaseCallback

log = logging.getLogger("tusd_py.app")


@contextlib.contextmanager
def _map_os_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        log.warning("upload lock %s failed: %s", operation, exc)
        raise errors.StateStoreError(f"upload locks are unavailable ({operation}); retry later") from exc


class FileLock:
    """A lock on one upload id, shared by the processes of one host."""

    def __init__(self, locker: FileLocker, upload_id: str) -> None:
        self._locker = locker
        self.upload_id = upload_id
        self.path = locker.path(upload_id)
        self.token: str | None = None
        self._fd: int | None = None
        #: Release requests reach the holder's callback through this (once per hold).
        self.release_requests = ReleaseCallback(upload_id)

    def _take(self) -> tuple[bool, str]:
        """One attempt: ``(True, "")`` when taken, else ``(False, holder)``
        where ``holder`` is the lock file's content (may be empty)."""
        for _ in range(100):  # retried only while holders unlink under us
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 512, 0).decode("utf-8", "replace")
                os.close(fd)
                return False, holder
            except BaseException:
                os.close(fd)
                raise
            try:
                linked = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                linked = False
            if not linked:  # released and unlinked between our open and flock
                os.close(fd)
                continue
            token = secrets.token_hex(16)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{self._locker.address} {token}".encode(), 0)
            self._fd, self.token = fd, token
            return True, ""
        return False, ""

    def _hold(self, on_release_requested: Callable[[], None]) -> None:
        self.release_requests.arm(on_release_requested)
        self._locker.holders[self.upload_id] = self

    async def acquire(self, timeout: float, on_release_requested: Callable[[], None]) -> None:
        if self.token is not None:
            raise RuntimeError(f"lock on {self.upload_id} is already held")
        locker = self._locker
        await locker.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wake = locker.waiters.add(self.upload_id)
        try:
            asked, asked_at = "", 0.0
            delay = locker.poll_min
            for _ in range(10_000_000):  # bounded by the deadline below
                wake.clear()
                with _map_os_errors("acquire"):
                    taken, holder = self._take()
                if taken:
                    break
                now = loop.time()
                if holder and (holder != asked or now - asked_at >= locker.ask_interval):
                    locker.ask_release(self.upload_id, holder)
                    asked, asked_at = holder, now
                remaining = deadline - now
                if remaining <= 0:
                    raise errors.LockTimeout(retry_after=min(timeout, 5.0) or 1.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(remaining, delay))
                delay = min(delay * 2, locker.poll_max)
        finally:
            locker.waiters.remove(self.upload_id, wake)
        self._hold(on_release_requested)

    async def try_acquire(self, on_release_requested: Callable[[], None]) -> bool:
        if self.token is not None:
            raise RuntimeError(f"lock on {self.upload_id} is already held")
        await self._locker.start()
        with _map_os_errors("acquire"):
            taken, _holder = self._take()
        if taken:
            self._hold(on_release_requested)
        return taken

    def still_held(self) -> bool:
        return self.token is not None  # a flock cannot be lost while the process lives

    def backend_failing(self) -> bool:
        return False

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        self.token = None
        self.release_requests.disarm()
        if fd is None:
            return
        locker = self._locker
        if locker.holders.get(self.upload_id) is self:
            del locker.holders[self.upload_id]
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)  # while still locked: see the module docstring
        except OSError as exc:
            log.warning("could not remove lock file %s: %s", self.path, exc)
        finally:
            os.close(fd)  # drops the flock
        locker.waiters.notify(self.upload_id)


class FileLocker:
    """``flock`` locks under ``directory``; one instance per process."""

    def __init__(
        self,
        directory: Path,
        *,
        poll_min: float = 0.005,
        poll_max: float = 0.1,
        ask_interval: float = 1.0,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.poll_min = poll_min
        self.poll_max = poll_max
        self.ask_interval = ask_interval
        #: Where this locker receives release requests (Linux abstract socket).
        self.address = f"@tusd-py-lock-{os.getpid()}-{secrets.token_hex(8)}"
        #: Locks held in this process, by upload id.
        self.holders: dict[str, FileLock] = {}
        self.waiters = FreeWaiters()
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def path(self, upload_id: str) -> Path:
        if "/" in upload_id or upload_id.startswith("."):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.directory / f"{upload_id}.lock"

    def new_lock(self, upload_id: str) -> FileLock:
        return FileLock(self, upload_id)

    @staticmethod
    def _sockaddr(address: str) -> str:
        return "\0" + address[1:] if address.startswith("@") else address

    async def start(self) -> None:
        """Bind the release-request socket (once, on the running loop)."""
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with _map_os_errors("bind"):
                sock.bind(self._sockaddr(self.address))
        except BaseException:
            sock.close()
            raise
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        self._sock = sock

    def _on_readable(self) -> None:
        sock = self._sock
        for _ in range(1000):  # drain what is queued, bounded
            if sock is None:
                return
            try:
                data = sock.recv(1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("lock release socket failed: %s", exc)
                return
            parts = data.decode("utf-8", "replace").split(" ")
            if len(parts) == 3 and parts[0] == "release":
                holder = self.holders.get(parts[1])
                if holder is not None and holder.token == parts[2]:
                    holder.release_requests.request()

    def ask_release(self, upload_id: str, holder: str) -> None:
        """Ask the holder described by a lock file (``<address> <token>``) to release."""
        address, _, token = holder.partition(" ")
        if not token:
            return  # the holder has not written itself down yet; asked on the next poll
        local = self.holders.get(upload_id)
        if address == self.address:
            if local is not None and local.token == token:
                local.release_requests.request()
            return
        if self._sock is None:
            return
        try:
            self._sock.sendto(f"release {upload_id} {token}".encode(), self._sockaddr(address))
        except OSError as exc:
            # ECONNREFUSED: the holder's process is gone (its flock is gone with it).
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT, errno.EAGAIN):
                log.warning("could not ask %s to release %s: %s", address, upload_id, exc)

    async def close(self) -> None:
        """Release locks still held and close the socket; idempotent."""
        for lock in list(self.holders.values()):
            await lock.release()
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
