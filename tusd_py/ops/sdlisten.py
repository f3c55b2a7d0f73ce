"""systemd socket activation (``sd_listen_fds(3)``) without libsystemd.

When started by a ``.socket`` unit, the service inherits listening sockets
as file descriptors 3, 4, ... and ``$LISTEN_FDS`` says how many
(``$LISTEN_PID`` must be this process). :func:`inherited_sockets` turns them
into non-blocking :class:`socket.socket` objects and removes the variables so
child processes do not take the sockets for theirs.
"""

from __future__ import annotations

import os
import socket
from collections.abc import MutableMapping

from tusd_py.core.config import ConfigError

#: The first inherited descriptor (``SD_LISTEN_FDS_START``).
LISTEN_FDS_START = 3


def inherited_sockets(
    environ: MutableMapping[str, str] | None = None, *, first_fd: int = LISTEN_FDS_START
) -> list[socket.socket] | None:
    """The TCP listening sockets passed by systemd, or None when there are none.

    Raises :class:`ConfigError` (key ``LISTEN_FDS``) if a passed descriptor
    is not a TCP stream socket, since serving HTTP on it cannot work.
    """
    env = os.environ if environ is None else environ
    count = env.get("LISTEN_FDS", "").strip()
    pid = env.get("LISTEN_PID", "").strip()
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not count.isdigit() or int(count) == 0 or pid != str(os.getpid()):
        return None
    sockets: list[socket.socket] = []
    for fd in range(first_fd, first_fd + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ConfigError("LISTEN_FDS", f"descriptor {fd} is not a socket: {exc}") from None
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            sock.detach()
            raise ConfigError("LISTEN_FDS", f"descriptor {fd} is not a TCP stream socket (use ListenStream=)")
        sock.set_inheritable(False)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets
