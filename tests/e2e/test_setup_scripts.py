"""README command 1 on a fresh copy, with Debian's externally-managed python3.

``./scripts/serve`` must build ``.venv`` of its own from ``requirements/serve.txt`` (pinned,
hashed) with whatever ``python3`` is first on PATH — here ``PATH=/usr/bin:/bin`` so Debian's
own interpreter (PEP 668) is the one found — and serve, without installing anything into
that interpreter. The copy holds exactly the files git tracks, as a fresh clone would.
"""

from __future__ import annotations

import ast
import http.client
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT, wait_until

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _system_python_ok() -> bool:
    if not SYSTEM_PYTHON.exists():
        return False
    probe = [str(SYSTEM_PYTHON), "-c", "import sys; sys.exit(sys.version_info < (3, 11))"]
    return subprocess.run(probe, check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _system_python_ok(), reason="no /usr/bin/python3 >= 3.11 here")


def _tracked_copy(dest: Path) -> None:
    """Copy the files git tracks (with their working-tree content) to ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout
    for name in listed.decode().split("\0"):
        if not name or name.startswith(("tests/", "node_modules/")):
            continue
        src = ROOT / name
        if not src.exists():
            continue  # deleted in the working tree, not yet committed
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _system_imports_tusd_py() -> bool:
    probe = [str(SYSTEM_PYTHON), "-c", "import tusd_py"]
    return subprocess.run(probe, cwd="/", capture_output=True, check=False).returncode == 0


@pytest.fixture
def fresh_copy(tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "tusd-py"
    _tracked_copy(copy)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)  # its .venv is ~100 MiB; pytest keeps old tmp dirs


def test_serve_with_debian_python_uses_its_own_venv(fresh_copy: Path, tmp_path: Path) -> None:
    assert not _system_imports_tusd_py(), "tusd_py is importable from the system python before the test"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = "/usr/bin:/bin"
    out_path = tmp_path / "serve.out"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            ["./scripts/serve", "--no-auth", "--port", "0", "--data-dir", str(tmp_path / "data")],
            cwd=fresh_copy,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def announced() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}: {out_path.read_text()[-3000:]}")
            for line in out_path.read_text(errors="replace").splitlines():
                if "listening on " in line:
                    return line.split("listening on ", 1)[1].strip()
            return None

        url = wait_until(announced, 480, "scripts/serve to install and listen")
        host_port = url.split("//", 1)[1].split("/", 1)[0]
        conn = http.client.HTTPConnection(host_port, timeout=10)
        conn.request("POST", "/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "3"})
        created = conn.getresponse()
        created.read()
        assert created.status == 201, created.status
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    venv_python = fresh_copy / ".venv" / "bin" / "python"
    base = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.base_prefix, sys.prefix)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert base[0] == "/usr", f"the venv was not made by Debian's python3: base prefix {base[0]}"
    assert base[1] == str(fresh_copy / ".venv")
    assert not _system_imports_tusd_py(), "scripts/serve installed tusd_py into the system python"


def test_locks_pin_every_requirement_of_setup_py() -> None:
    """setup.py keeps ranges; the lock files pin versions inside them, the same in both locks."""
    from packaging.requirements import Requirement

    def pins(path: Path) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in path.read_text().splitlines():
            if line and not line.startswith((" ", "#")) and "==" in line:
                req = Requirement(line.rstrip(" \\"))
                if req.marker is None or req.marker.evaluate():
                    found[req.name.lower()] = str(next(iter(req.specifier)).version)
        return found

    serve = pins(ROOT / "requirements" / "serve.txt")
    test = pins(ROOT / "requirements" / "test.txt")
    tree = ast.parse((ROOT / "setup.py").read_text())
    runtime = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "install_requires"
    )
    assert isinstance(runtime, list) and runtime
    for spec in runtime:
        req = Requirement(spec)
        name = req.name.lower()
        assert name in serve, f"{name} (setup.py) is not pinned in requirements/serve.txt: run scripts/lock"
        assert req.specifier.contains(serve[name]), f"{name}=={serve[name]} is outside {spec}"
    for name, version in serve.items():
        assert test.get(name) == version, f"{name}: serve.txt pins {version}, test.txt {test.get(name)}"
