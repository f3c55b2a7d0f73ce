"""sd_notify client: address parsing, the watchdog interval, datagrams on
path and abstract sockets, and never raising."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

import pytest

from tusd_py.core.config import ConfigError
from tusd_py.ops.sdlisten import inherited_sockets
from tusd_py.ops.sdnotify import Notifier, socket_address, watchdog_interval


def test_socket_address() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abstract") == "\0abstract"
    assert socket_address("@") is None
    assert socket_address("vsock:2:1234") is None


def test_watchdog_interval_is_half_the_timeout_and_only_for_us() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None


def test_disabled_without_notify_socket() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled and notifier.ready() is False


@pytest.mark.parametrize("abstract", [False, True])
def test_messages_arrive_as_one_datagram(tmp_path: Path, abstract: bool) -> None:
    if abstract:
        name = f"tusd-py-unit-{secrets.token_hex(6)}"
        bind_to, env_value = "\0" + name, "@" + name
    else:
        bind_to = env_value = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(bind_to)
        manager.settimeout(10)
        notifier = Notifier.from_env({"NOTIFY_SOCKET": env_value})
        assert notifier.ready("listening on port 1")
        assert manager.recv(4096) == b"READY=1\nSTATUS=listening on port 1"
        assert notifier.watchdog()
        assert manager.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping()
        assert manager.recv(4096) == b"STOPPING=1"
        notifier.close()


def test_a_missing_manager_socket_never_raises(tmp_path: Path) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.stopping() is False
    notifier.close()


def test_no_inherited_sockets_without_listen_fds_for_this_pid() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "http"}
    assert inherited_sockets(env) is None
    assert env == {}  # consumed so children do not see them
    assert inherited_sockets({}) is None


def test_inherited_sockets_are_taken_from_the_passed_descriptors() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        got = inherited_sockets(dict(env), first_fd=listening.fileno())
        assert got is not None and len(got) == 1
        assert got[0].getsockname() == listening.getsockname() and not got[0].getblocking()
        got[0].detach()


def test_an_inherited_non_tcp_socket_is_a_config_error() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as odd:
        with pytest.raises(ConfigError, match="LISTEN_FDS"):
            inherited_sockets(env, first_fd=odd.fileno())
