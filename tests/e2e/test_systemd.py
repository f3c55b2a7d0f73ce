"""Running under systemd: the unit files verify, sd_notify messages arrive on
a NOTIFY_SOCKET the test owns, and socket activation serves the passed socket."""

from __future__ import annotations

import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.serverproc import DEADLINE, ROOT, ServerProcess
from tests.services import free_port

UNIT_DIR = ROOT / "systemd"
INSTALLED_BINARY = "/usr/local/bin/tusd-py"


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for server in started:
        server.kill()


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """``systemd-analyze verify`` needs ExecStart's binary to exist: the copy
    runs this interpreter with ``-m tusd_py`` instead of the install path."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: scripts/test installs the systemd package"
    service = (UNIT_DIR / "tusd-py.service").read_text()
    assert f"ExecStart={INSTALLED_BINARY} serve " in service
    (tmp_path / "tusd-py.service").write_text(
        service.replace(INSTALLED_BINARY, f"{sys.executable} -m tusd_py")
    )
    shutil.copy(UNIT_DIR / "tusd-py.socket", tmp_path / "tusd-py.socket")
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "tusd-py.service"), str(tmp_path / "tusd-py.socket")],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown keys and bad values are only warnings: none may mention our units.
    assert "tusd-py" not in output, output


def test_unit_keeps_stop_timeout_above_drain_timeout() -> None:
    from tusd_py.core.config_sections import ServerConfig

    lines = (UNIT_DIR / "tusd-py.service").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    assert settings["Type"] == "notify"
    assert float(settings["TimeoutStopSec"].removesuffix("s")) > ServerConfig().drain_timeout + 5
    for key in ("ProtectSystem", "PrivateTmp", "NoNewPrivileges", "ProtectHome", "RestrictAddressFamilies"):
        assert key in settings, key


class NotifyListener:
    """The service manager's side of NOTIFY_SOCKET: a unix datagram socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.messages: list[list[str]] = []

    def next(self, timeout: float = DEADLINE) -> list[str]:
        self.sock.settimeout(timeout)
        message = self.sock.recv(4096).decode().split("\n")
        self.messages.append(message)
        return message

    def until(self, entry: str, timeout: float = DEADLINE) -> list[list[str]]:
        """Messages received up to and including the first containing ``entry``."""
        deadline = time.monotonic() + timeout
        got: list[list[str]] = []
        while True:
            got.append(self.next(max(0.01, deadline - time.monotonic())))
            if entry in got[-1]:
                return got

    def close(self) -> None:
        self.sock.close()


def test_ready_watchdog_and_stopping_on_a_path_socket(tmp_path: Path, servers: list[ServerProcess]) -> None:
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    try:
        server = ServerProcess(
            tmp_path / "data",
            env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"},
        )
        servers.append(server)
        ready = listener.until("READY=1")[-1]
        assert any(entry.startswith("STATUS=listening") for entry in ready)
        server.wait_listening()
        assert server.request("GET", "/healthz")[0] == 200  # READY came after listen
        pings = [listener.until("WATCHDOG=1") for _ in range(3)]
        assert all(batch[-1] == ["WATCHDOG=1"] for batch in pings)
        server.signal(signal.SIGTERM)
        assert any("STOPPING=1" in m for m in listener.until("STOPPING=1"))
        assert server.wait() == 0
    finally:
        listener.close()


def test_abstract_socket_and_no_watchdog_unless_asked(tmp_path: Path, servers: list[ServerProcess]) -> None:
    name = f"tusd-py-test-{secrets.token_hex(6)}"
    listener = NotifyListener("\0" + name)
    try:
        server = ServerProcess(tmp_path / "data", env={"NOTIFY_SOCKET": "@" + name})
        servers.append(server)
        listener.until("READY=1")
        server.wait_listening()
        server.signal(signal.SIGTERM)
        between = listener.until("STOPPING=1")
        assert not any("WATCHDOG=1" in message for message in between), between
        assert server.wait() == 0
    finally:
        listener.close()


def test_socket_activation_serves_the_inherited_socket(tmp_path: Path, servers: list[ServerProcess]) -> None:
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate missing: scripts/test installs the systemd package"
    port = free_port()
    command = [
        activate,
        "-l",
        f"127.0.0.1:{port}",
        "-E",
        f"PYTHONPATH={ROOT}",
        sys.executable,
        "-m",
        "tusd_py",
    ]
    # --host/--port name an address the server could not bind (in use): only
    # the inherited socket can answer.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        server = ServerProcess(
            tmp_path / "data", "--port", str(taken.getsockname()[1]), command=command, port=port
        )
        servers.append(server)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:  # the activator listens before it starts the server
            try:
                status = server.request("GET", "/healthz")[0]
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
        assert status == 200
        path = server.create(5, b"hello")
        assert server.offset(path) == 5
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    assert any(r.get("event") == "ServerReady" and r["port"] == port for r in server.logs())
