"""systemd service notifications (``sd_notify(3)``) without libsystemd.

A :class:`Notifier` sends ``KEY=VALUE`` lines as one datagram to the unix
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract
socket). Without that variable it is a silent no-op, so the same code runs
under systemd, in a terminal and in tests.

Contract: ``notify`` never raises and never blocks (the socket is
non-blocking; a datagram that cannot be sent now is dropped and logged once).
:func:`watchdog_interval` reads ``$WATCHDOG_USEC``/``$WATCHDOG_PID``;
:func:`keep_alive` sends ``WATCHDOG=1`` from the event loop, so a blocked loop
stops the pings and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("tusd_py.app")


def socket_address(value: str) -> str | None:
    """The ``sendto`` address of a ``$NOTIFY_SOCKET`` value, or None if unsupported.

    ``/run/systemd/notify`` stays a path; ``@name`` becomes the abstract
    address ``\\0name``. Other schemes (e.g. ``vsock:``) are not supported.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


class Notifier:
    """Sends state changes to the service manager (see module docstring)."""

    def __init__(self, address: str | None) -> None:
        self._address = address
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` (disabled when unset or unsupported)."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("NOTIFY_SOCKET %r is not a unix socket address; notifications disabled", raw)
        return cls(address)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``assignments`` (e.g. ``"READY=1"``) as one datagram. True if sent."""
        if self._address is None or not assignments:
            return False
        data = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self._address)
            return True
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("sd_notify to %r failed: %s", self._address, exc)
            return False

    def ready(self, status: str = "") -> bool:
        """The service is up (listening)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str = "") -> bool:
        """The service began its graceful shutdown."""
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def status(self, status: str) -> bool:
        """A free-form status line (``systemctl status`` shows it)."""
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        """Keep-alive ping for ``WatchdogSec=``."""
        return self.notify("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``$WATCHDOG_USEC``.

    None when the watchdog is off, the value is invalid, or ``$WATCHDOG_PID``
    names another process (the pings are then not ours to send).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "").strip()
    if not raw.isdigit() or int(raw) <= 0:
        return None
    pid = env.get("WATCHDOG_PID", "").strip()
    if pid and pid != str(os.getpid()):
        return None
    return int(raw) / 2_000_000


async def keep_alive(notifier: Notifier, interval: float) -> None:
    """Ping the watchdog every ``interval`` seconds until cancelled."""
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
