"""``systemd/tusd-py-worker.service`` verifies and runs ``tusd-py worker``."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.serverproc import DEADLINE, ROOT

UNIT = ROOT / "systemd" / "tusd-py-worker.service"
INSTALLED_BINARY = "/usr/local/bin/tusd-py"


def settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


def test_worker_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: scripts/test installs the systemd package"
    text = UNIT.read_text()
    assert f"ExecStart={INSTALLED_BINARY} worker " in text
    copy = tmp_path / "tusd-py-worker.service"
    copy.write_text(text.replace(INSTALLED_BINARY, f"{sys.executable} -m tusd_py"))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=DEADLINE)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "tusd-py" not in output, output


def test_worker_unit_shares_the_servers_user_and_data_dir() -> None:
    from tusd_py.core.config_sections import ServerConfig

    s = settings()
    server = (ROOT / "systemd" / "tusd-py.service").read_text()
    assert s["User"] == ["tusd-py"] and s["DynamicUser"] == ["yes"], "same dynamic user as tusd-py.service"
    assert s["StateDirectory"] == ["tusd-py"] and "StateDirectory=tusd-py" in server
    assert s["Type"] == ["notify"]
    assert float(s["TimeoutStopSec"][0].rstrip("s")) > ServerConfig().drain_timeout


def test_worker_command_is_registered() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tusd_py", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0 and "--jobs-workers" in result.stdout, result.stderr
