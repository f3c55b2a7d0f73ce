"""The server as a real subprocess, for tests that need signals, stdout/stderr
and systemd environment variables.

:class:`ServerProcess` runs ``python -m tusd_py serve --no-auth`` with this
checkout on ``PYTHONPATH``, collects stderr (JSON log lines) in a thread so
tests can wait for a log event with a deadline, and offers small HTTP helpers
(``http.client``: no proxies, no retries). :func:`metric_values` parses
``/metrics``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
#: Generous bound for anything a subprocess does on a loaded 2-core machine.
DEADLINE = 60.0

LogLine = dict[str, Any]
#: What asyncio logs when a task failed and nobody awaited it (always a bug).
ORPHANED_TASK = "Task exception was never retrieved"


class ServerProcess:
    """One ``tusd-py serve`` subprocess (see module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        port: int | None = None,
    ) -> None:
        full_env = dict(os.environ)
        full_env.pop("NOTIFY_SOCKET", None)
        full_env.pop("WATCHDOG_USEC", None)
        full_env["PYTHONPATH"] = str(ROOT)
        full_env.update(env or {})
        base = list(command) if command else [sys.executable, "-m", "tusd_py"]
        argv = [*base, "serve", "--no-auth", "--data-dir", str(data_dir), "--progress-interval", "0.05"]
        if port is None:
            argv += ["--port", "0"]
        self.proc = subprocess.Popen(
            [*argv, *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.port = port or 0

    # --- process ---------------------------------------------------------------

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_listening(self) -> int:
        """Read the ``listening on`` line from stdout; returns the port."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "listening on" in line, (line, self.proc.poll(), self.lines)
        self.port = int(line.rsplit(":", 1)[1].split("/", 1)[0])
        return self.port

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = DEADLINE) -> int:
        """Wait for the exit; fails on an orphaned task failure in the log."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        self.assert_no_orphaned_tasks()
        return code

    def kill(self) -> None:
        """SIGKILL (if still running), then fail if the log shows an orphaned
        task failure (see :meth:`assert_no_orphaned_tasks`)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(DEADLINE)
        self._reader.join(DEADLINE)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.assert_no_orphaned_tasks()

    def assert_no_orphaned_tasks(self) -> None:
        """Fail if asyncio logged a task failure nobody retrieved: every
        background task's failure must be handled (and logged) by the server."""
        with self._cond:
            orphaned = [line for line in self.lines if ORPHANED_TASK in line]
        assert not orphaned, "\n".join(orphaned)

    # --- logs --------------------------------------------------------------------

    def logs(self) -> list[LogLine]:
        """The JSON log lines on stderr so far, parsed (other lines are skipped)."""
        with self._cond:
            lines = list(self.lines)
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_log(self, match: Callable[[LogLine], bool], timeout: float = DEADLINE) -> LogLine:
        """The first log line satisfying ``match``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    if line.startswith("{") and match(record := json.loads(line)):
                        return record
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no matching log line; got {self.lines}")
                self._cond.wait(min(remaining, 0.5))

    # --- HTTP --------------------------------------------------------------------

    def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """One request on a fresh connection: ``(status, headers, body)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)
        try:
            conn.request(method, path, body=body, headers=dict(headers or {}))
            res = conn.getresponse()
            return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
        finally:
            conn.close()

    def create(self, length: int, body: bytes = b"") -> str:
        """Create an upload (with ``body`` as creation-with-upload); returns its path."""
        headers = {"Tus-Resumable": "1.0.0", "Upload-Length": str(length)}
        if body:
            headers["Content-Type"] = "application/offset+octet-stream"
        status, res_headers, text = self.request("POST", "/files/", headers, body)
        assert status == 201, (status, text)
        return "/files/" + res_headers["location"].rsplit("/", 1)[1]

    def patch(self, path: str, offset: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        return self.request("PATCH", path, headers, body)

    def offset(self, path: str) -> int:
        status, headers, _ = self.request("HEAD", path, {"Tus-Resumable": "1.0.0"})
        assert status == 200, status
        return int(headers["upload-offset"])

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, _, body = self.request("GET", "/metrics")
        assert status == 200
        return metric_values(body.decode())

    def wait_metric(self, name: str, value: float, timeout: float = DEADLINE) -> None:
        """Poll ``/metrics`` until the unlabelled sample ``name`` equals ``value``."""
        deadline = time.monotonic() + timeout
        current = None
        while time.monotonic() < deadline:
            current = self.metrics().get((name, ()))
            if current == value:
                return
            time.sleep(0.02)
        raise AssertionError(f"{name} stayed {current}, expected {value}")


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a text exposition."""
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


class RawPatch:
    """A PATCH whose body the test sends piece by piece over a raw socket."""

    def __init__(self, port: int, path: str, offset: int, length: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nTus-Resumable: 1.0.0\r\n"
            f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n"
        )
        self.sock.sendall(head.encode())

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> tuple[int, dict[str, str]]:
        """Status and headers of the response (raises if the server closed the connection)."""
        reader = self.sock.makefile("rb")
        status_line = reader.readline().decode()
        assert status_line.startswith("HTTP/1.1 "), status_line
        headers: dict[str, str] = {}
        for raw in iter(reader.readline, b"\r\n"):
            name, _, value = raw.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def wait_closed(self) -> bytes:
        """Block until the server closes the connection; returns what it sent."""
        received = b""
        try:
            while chunk := self.sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received

    def close(self) -> None:
        self.sock.close()


def start(servers: list[ServerProcess], data_dir: Path, *args: str) -> ServerProcess:
    """A new :class:`ServerProcess` on ``data_dir``, recorded in ``servers`` (killed by the
    ``servers`` fixture of ``tests/e2e/conftest.py``), once it listens."""
    server = ServerProcess(data_dir, *args)
    servers.append(server)
    server.wait_listening()
    return server
