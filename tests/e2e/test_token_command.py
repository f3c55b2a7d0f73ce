"""``tusd-py serve`` with auth on by default and ``tusd-py token``, as processes."""

from __future__ import annotations

import json
import os
import queue
import shlex
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import jwt

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]


def tusd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "tusd_py", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def line_reader(proc: subprocess.Popen[str]) -> Callable[[], str]:
    """A function returning the next stdout line of ``proc`` (fails after 60 s)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()

    def next_line() -> str:
        try:
            return lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"serve printed nothing (exit code {proc.poll()})") from None

    return next_line


@contextmanager
def serve(cwd: Path, *args: str) -> Iterator[tuple[str, list[str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(ROOT)
    with subprocess.Popen(
        [sys.executable, "-m", "tusd_py", "serve", "--port", str(port), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            read_line = line_reader(proc)
            lines = [read_line(), read_line()]
            yield f"http://127.0.0.1:{port}/files/", lines
        finally:
            proc.terminate()
            proc.wait(30)


def create(url: str, token: str | None) -> int:
    headers = {"Tus-Resumable": "1.0.0", "Upload-Length": "5"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method="POST", headers=headers, data=b"")
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return int(res.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def test_first_serve_generates_a_secret_and_token_output_is_accepted(tmp_path: Path) -> None:
    with serve(tmp_path) as (url, lines):
        assert lines[0].strip() == f"tusd-py: open {url.removesuffix('files/')} to upload; listening on {url}"
        assert f"tusd-py token --user NAME --data-dir {tmp_path / 'data'} " in lines[1]
        secret = tmp_path / "data" / "auth-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert create(url, None) == 401
        minted = tusd("token", "--user", "alice", "--tier", "premium", "--ttl", "120", cwd=tmp_path)
        assert minted.returncode == 0, minted.stderr
        token = minted.stdout.strip()
        assert minted.stdout == token + "\n"
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["sub"] == "alice" and claims["tier"] == "premium"
        assert claims["exp"] - claims["iat"] == 120
        assert create(url, token) == 201
        # a data dir serve never used has no secret: no token, and no secret made there
        other = tusd("token", "--user", "alice", "--data-dir", str(tmp_path / "elsewhere"))
        assert other.returncode == 2 and other.stdout == ""
        assert not (tmp_path / "elsewhere").exists()


def hint_command(line: str) -> list[str]:
    """The argv of the banner's ``get a token: tusd-py token ...`` hint, for user alice."""
    command = line.split("get a token: ", 1)[1].split(" [--tier", 1)[0]
    words = shlex.split(command.replace("NAME", "alice"))
    assert words[:2] == ["tusd-py", "token"], words
    return words[2:]


def test_token_from_another_directory_refuses_and_the_banner_hint_works_anywhere(tmp_path: Path) -> None:
    home = tmp_path / "srv"
    home.mkdir()
    (home / "tusd.toml").write_text('[server]\ndata_dir = "state"\n')  # both paths relative
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with serve(home, "--config", "tusd.toml") as (url, lines):
        assert (home / "state" / "auth-secret").exists()
        # the mistake: `token` in another directory used to make ./data/auth-secret there
        res = tusd("token", "--user", "alice", cwd=elsewhere)
        assert res.returncode == 2 and res.stdout == ""
        assert f"{elsewhere / 'data' / 'auth-secret'} does not exist" in res.stderr
        assert "--data-dir" in res.stderr and "--config" in res.stderr
        assert list(elsewhere.iterdir()) == []
        # the hint, copied as printed, works from any directory
        argv = hint_command(lines[1])
        assert argv == [
            "--user",
            "alice",
            "--config",
            str(home / "tusd.toml"),
            "--data-dir",
            str(home / "state"),
        ]
        minted = tusd("token", *argv, cwd=elsewhere)
        assert minted.returncode == 0, minted.stderr
        assert create(url, minted.stdout.strip()) == 201
        assert list(elsewhere.iterdir()) == []


def test_token_uses_the_config_file(tmp_path: Path) -> None:
    conf = tmp_path / "tusd.toml"
    conf.write_text(
        f'[server]\ndata_dir = "{tmp_path / "d"}"\n[auth]\nsecret = "{"c" * 40}"\naudience = "aud-1"\n'
    )
    with serve(tmp_path, "--config", str(conf)) as (url, lines):
        assert "--data-dir" not in lines[1] and f"--config {conf} " in lines[1]
        minted = tusd("token", "--user", "bob", "--config", str(conf))
        assert minted.returncode == 0, minted.stderr
        assert jwt.decode(minted.stdout.strip(), options={"verify_signature": False})["aud"] == "aud-1"
        assert create(url, minted.stdout.strip()) == 201


def test_token_refuses_bad_arguments(tmp_path: Path) -> None:
    assert tusd("token", "--data-dir", str(tmp_path)).returncode == 2  # --user is required
    res = tusd("token", "--user", "x", "--tier", "gold", "--data-dir", str(tmp_path))
    assert res.returncode == 2 and "gold" in res.stderr
    res = tusd("token", "--user", "x", "--ttl", "0", "--data-dir", str(tmp_path))
    assert res.returncode == 2 and "ttl" in res.stderr


def test_no_auth_is_refused_off_loopback(tmp_path: Path) -> None:
    res = tusd("serve", "--no-auth", "--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert res.returncode == 2 and "--no-auth is only allowed on a loopback host" in res.stderr
    res = tusd("check-config", "--no-auth", "--host", "192.0.2.1", "--data-dir", str(tmp_path))
    assert res.returncode == 2
    res = tusd("check-config", "--no-auth", "--host", "::1", "--data-dir", str(tmp_path))
    assert res.returncode == 0 and json.loads(res.stdout)["auth"]["enabled"] is False
    assert tusd("check-config", "--data-dir", str(tmp_path)).returncode == 0


def test_no_auth_on_loopback_serves_without_tokens(tmp_path: Path) -> None:
    with serve(tmp_path, "--no-auth") as (url, lines):
        assert "auth is off" in lines[1]
        assert create(url, None) == 201
