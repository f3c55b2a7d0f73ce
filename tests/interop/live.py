"""A real ``tusd-py serve`` subprocess for interop tests, plus small HTTP helpers.

The server is started as ``[sys.executable, "-m", "tusd_py", "serve", ...]``
with ``PYTHONPATH`` = this repository, so the worktree's code is what runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import services

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class LiveServer:
    """A running ``tusd-py serve`` subprocess whose output goes to ``log_path``."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The creation URL (collection) clients POST to."""
        return f"{self.base_url}/files/"

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_records(self, since: int = 0) -> list[dict[str, Any]]:
        """JSON log lines written after byte ``since`` (other lines are skipped)."""
        with self.log_path.open("rb") as f:
            f.seek(since)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        lines = complete.decode("utf-8", "replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def wait_for_records(
        self, since: int, predicate: Callable[[dict[str, Any]], bool], count: int, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Log records after ``since`` matching ``predicate``, once there are ``count``.

        A request's access line is written just after its response is sent,
        so a client can be faster than the log; this polls until ``count``
        matching lines exist or ``timeout`` passes, then returns them all.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.log_records(since) if predicate(r)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_server(root: Path, args: Sequence[str], extra_env: Mapping[str, str] | None = None) -> LiveServer:
    """Start ``tusd-py serve`` with ``args`` (and ``extra_env`` on top of this
    process's environment) on a free loopback port under ``root``.

    Returns once ``/healthz`` answers 200; raises ``RuntimeError`` with the
    server's log if it exits or does not answer within ``START_TIMEOUT``.
    """
    data_dir = root / "data"
    log_path = root / "server.log"
    port = services.free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra_env or {})
    cmd = [
        sys.executable, "-m", "tusd_py", "serve", *args,
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = LiveServer(process=process, port=port, data_dir=data_dir, log_path=log_path)
    try:
        _wait_until_serving(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def _wait_until_serving(server: LiveServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"tusd-py exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.base_url + "/healthz", timeout=2) as res:
                if res.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"tusd-py did not answer /healthz within {START_TIMEOUT}s:\n{server.log_tail()}")


def mint_token(server: LiveServer, user: str, tier: str) -> str:
    """A JWT from ``tusd-py token`` signed with the secret ``server`` generated
    in its data dir (what an operator would hand to a client)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    cmd = [
        sys.executable, "-m", "tusd_py", "token",
        "--user", user, "--tier", tier, "--data-dir", str(server.data_dir),
    ]  # fmt: skip
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip()


def stop_server(server: LiveServer) -> None:
    """SIGTERM (graceful drain), then SIGKILL if it does not exit in time."""
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)


def server_errors(records: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Log records that answered 5xx or were logged at error level."""
    return [r for r in records if int(r.get("status") or 0) >= 500 or r.get("level") in ("error", "critical")]


def write_random_file(path: Path, size: int, seed: int) -> str:
    """Write ``size`` pseudo-random bytes to ``path``; returns their sha256."""
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256_via_get(url: str, headers: Mapping[str, str], timeout: float = 30.0) -> str:
    """GET ``url`` and return the sha256 of the body, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers=dict(headers), method="GET")
    with urllib.request.urlopen(request, timeout=timeout) as res:
        assert res.status == 200, res.status
        for _ in range(1 << 20):
            block = res.read(1 << 20)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def head(url: str, headers: Mapping[str, str], timeout: float = 30.0) -> dict[str, str]:
    """HEAD an upload (with ``Tus-Resumable``); returns the response headers."""
    all_headers = {"Tus-Resumable": "1.0.0", **headers}
    request = urllib.request.Request(url, headers=all_headers, method="HEAD")
    with urllib.request.urlopen(request, timeout=timeout) as res:
        assert res.status == 200, res.status
        return dict(res.headers.items())


def run_node_script(script: Path, config: Mapping[str, Any], deadline: float) -> dict[str, Any]:
    """Run ``node script '<config as JSON>'`` from the repository root (where
    ``node_modules`` is) and return the JSON object its last stdout line holds;
    fails the test when node is missing, ``npm ci`` has not run, or the script
    exits non-zero (its stderr in the message)."""
    node = shutil.which("node")
    assert node is not None, "node is not installed (Node 20 is a test dependency)"
    assert (REPO_ROOT / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` (scripts/test does)"
    proc = subprocess.run(
        [node, str(script), json.dumps({**config, "deadlineMs": int(deadline * 1000)})],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=deadline + 10,
        check=False,
    )
    assert proc.returncode == 0, f"{script.name} failed ({proc.returncode}):\n{proc.stderr}"
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
