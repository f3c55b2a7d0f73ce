"""Processes and files for end-to-end tests of the client commands.

* :class:`ServerProcess` — ``python -m tusd_py serve --no-auth --port 0`` as a real subprocess
  (PYTHONPATH = this worktree), its URL read from its announcement line.
* :func:`run_cli` / :func:`start_cli` — ``python -m tusd_py <command> ...`` as a real subprocess
  with its own ``XDG_CACHE_HOME``; stderr JSON events parsed by :func:`events`.
* :func:`make_file` — a sparse, pseudo-random file; :func:`sha256_file` / :func:`sha256_url`.
* :func:`wait_until` — poll with a deadline (no sleeps as synchronisation).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """The first truthy ``predicate()``; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("TUSD_PY_TOKEN", None)
    env.update(extra)
    return env


class ServerProcess:
    """A real ``tusd-py serve`` subprocess on a free loopback port."""

    def __init__(
        self, data_dir: Path, log_path: Path, extra_args: Sequence[str] = (), *, auth: bool = False
    ) -> None:
        """``auth``: serve with JWT auth on (the secret generated in ``data_dir``;
        mint tokens with :meth:`token`); off by default (``--no-auth``)."""
        self.data_dir = data_dir
        self.log_path = log_path
        self._out_path = log_path.with_suffix(".out")
        args = [
            sys.executable,
            "-m",
            "tusd_py",
            "serve",
            *([] if auth else ["--no-auth"]),
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
            *extra_args,
        ]
        with open(self._out_path, "wb") as out, open(log_path, "wb") as err:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=err, env=child_env(), cwd=str(data_dir.parent)
            )
        line = wait_until(self._announced, 60, "the server to announce its URL")
        self.url: str = line.split("listening on ", 1)[1].strip()
        self.port = urlsplit(self.url).port or 80

    def _announced(self) -> str | None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}"
            )
        for line in self._out_path.read_text().splitlines():
            if "listening on " in line:
                return line
        return None

    def token(self, user: str, tier: str = "basic") -> str:
        """A JWT from ``tusd-py token`` with this server's generated secret."""
        argv = cli_args("token", "--user", user, "--tier", tier, "--data-dir", str(self.data_dir))
        out = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=60, check=True)
        return out.stdout.strip()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict[str, Any]]:
        return events(self.stderr)


def events(stderr: str) -> list[dict[str, Any]]:
    """The JSON-lines events of a CLI run (lines starting with ``{``)."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def cli_args(*args: str) -> list[str]:
    return [sys.executable, "-m", "tusd_py", *args]


def run_cli(args: Sequence[str], cache: Path, timeout: float = 240, **env: str) -> CliResult:
    proc = subprocess.run(
        cli_args(*args),
        env=child_env(XDG_CACHE_HOME=str(cache), **env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def start_cli(args: Sequence[str], cache: Path, stderr_path: Path, **env: str) -> subprocess.Popen[bytes]:
    """The CLI in the background; its stderr goes to ``stderr_path`` (read it with :func:`events`)."""
    with open(stderr_path, "wb") as err:
        return subprocess.Popen(
            cli_args(*args),
            env=child_env(XDG_CACHE_HOME=str(cache), **env),
            stdout=subprocess.PIPE,
            stderr=err,
        )


def make_file(path: Path, size: int, seed: int = 1, hole_every: int = 4) -> str:
    """Write ``size`` pseudo-random bytes with every ``hole_every``-th MiB left as a hole
    (sparse); returns the sha256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    zero = bytes(MIB)
    with open(path, "wb") as handle:
        position = 0
        block_index = 0
        while position < size:
            n = min(MIB, size - position)
            if hole_every and block_index % hole_every == hole_every - 1 and n == MIB:
                handle.seek(n, os.SEEK_CUR)
                digest.update(zero)
            else:
                block = rng.randbytes(n)
                handle.write(block)
                digest.update(block)
            position += n
            block_index += 1
        handle.truncate(size)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def sha256_url(url: str) -> tuple[int, str]:
    """``(length, sha256)`` of a GET of ``url``, streamed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=60)
    try:
        conn.request("GET", parts.path)
        response = conn.getresponse()
        assert response.status == 200, (response.status, response.read()[:500])
        digest = hashlib.sha256()
        length = 0
        while block := response.read(MIB):
            digest.update(block)
            length += len(block)
        return length, digest.hexdigest()
    finally:
        conn.close()


def head(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    try:
        conn.request("HEAD", parts.path, headers={"Tus-Resumable": "1.0.0"})
        response = conn.getresponse()
        response.read()
        return {k.lower(): v for k, v in response.getheaders()} | {"status": str(response.status)}
    finally:
        conn.close()
