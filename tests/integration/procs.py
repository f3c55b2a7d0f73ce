"""Real processes for multi-instance tests: redis-server and ``tusd-py serve``.

Servers run as ``[sys.executable, "-m", "tusd_py", "serve", "--no-auth", ...]``
with ``PYTHONPATH`` set to this worktree, on loopback, port 0 (the port is
read from the "listening on" line). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from tests import services
from tests.integration import tushttp

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(rb"listening on (http://[^\s]+?)(/files/)?\s")


class RedisProcess:
    """A redis-server with an append-only file, so it can be stopped and
    restarted on the same port without losing records (as in production)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or services.free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run scripts/test (it installs it)")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        services.wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL (the append-only file keeps every acknowledged write)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        """SIGTERM (after SIGCONT: a paused server ignores SIGTERM), then SIGKILL if needed."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a server subprocess: no inherited TUSD_PY_ config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class ServerProcess:
    """One ``tusd-py serve`` subprocess; stderr (JSON logs) goes to a file."""

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        env: Mapping[str, str],
        args: tuple[str, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = server_env(env)
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    @property
    def files_url(self) -> str:
        return self.base_url + "/files/"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Launch and wait until it listens."""
        self.launch()
        return self.wait_ready(timeout)

    def launch(self) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "tusd_py",
            "serve",
            "--no-auth",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(self.data_dir),
            *self.args,
        ]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, env=self.env, cwd=str(self.data_dir)
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        """Wait for the "listening on" line; sets :attr:`base_url`."""
        assert self.proc is not None and self.proc.stdout is not None
        buffer = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while True:
                match = _LISTENING.search(buffer)
                if match:
                    self.base_url = match.group(1).decode()
                    return self
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.kill9()
                    raise RuntimeError(f"server did not start; log:\n{self.log_tail()}")
                if sel.select(timeout=min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        continue
                    buffer += chunk

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (bounded); returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def start_all(servers: list[ServerProcess], timeout: float = 90.0) -> list[ServerProcess]:
    """Launch every server at once, then wait for each (startups overlap)."""
    for server in servers:
        server.launch()
    try:
        for server in servers:
            server.wait_ready(timeout)
    except BaseException:
        for server in servers:
            server.kill9()
        raise
    return servers


#: What asyncio logs when a task failed and nobody awaited it (always a bug).
ORPHANED_TASK = "Task exception was never retrieved"


def server_errors(log_path: Path) -> list[str]:
    """Log lines of 500 answers, uncaught exceptions or orphaned task
    failures (each one is a bug)."""
    bad = []
    with contextlib.suppress(FileNotFoundError):
        for line in log_path.read_text(errors="replace").splitlines():
            if (
                '"status": 500' in line
                or '"exc": ' in line
                or line.startswith("Traceback")
                or ORPHANED_TASK in line
            ):
                bad.append(line[:2000])
    return bad


class ServerGroup:
    """Several ``serve`` processes started together (one server to clients)."""

    def __init__(self, servers: list[ServerProcess]) -> None:
        self.servers = start_all(servers)

    def url(self, index: int, upload_url: str) -> str:
        """``upload_url`` on server ``index``."""
        return tushttp.on(self.servers[index].base_url, upload_url)

    def logs(self) -> str:
        return "\n".join(f"--- {s.log_path.name}\n{s.log_tail()}" for s in self.servers)

    def stop(self) -> None:
        """Stop every server; fail on any 500 or uncaught exception in their logs."""
        for server in self.servers:
            server.stop()
        bad = [line for server in self.servers for line in server_errors(server.log_path)]
        assert not bad, "\n".join(bad)
