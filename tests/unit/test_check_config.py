"""``tusd-py check-config``: validates, prints the effective config with
secrets masked; a bad config exits 2 naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tusd_py.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["check-config", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TUSD_PY_") and not name.startswith("TUSD_PY_TEST_"):
            monkeypatch.delenv(name)


def test_prints_effective_config_with_secrets_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text("s3-very-secret\n")
    toml = tmp_path / "tusd-py.toml"
    toml.write_text(
        f'[server]\nport = 7000\ndrain_timeout = 5\n[s3]\nsecret_access_key_file = "{secret_file}"\n'
        '[auth]\nsecret = "toml-secret"\n'
    )
    monkeypatch.setenv("TUSD_PY_SERVER_PORT", "7100")
    monkeypatch.setenv("TUSD_PY_AUTH_SECRET", "env-secret")
    code, out, err = check(capsys, "--config", str(toml), "--drain-timeout", "7.5")
    assert code == 0, err
    effective = json.loads(out)
    assert effective["server"]["port"] == 7100  # env beats TOML
    assert effective["server"]["drain_timeout"] == 7.5  # flag beats TOML
    assert effective["auth"]["secret"] == "***"
    assert effective["s3"]["secret_access_key"] == "***"
    for secret in ("toml-secret", "env-secret", "s3-very-secret"):
        assert secret not in out
    from tusd_py.core.config import sections

    assert set(effective) == set(sections())


@pytest.mark.parametrize(
    ("toml", "env", "flags", "key"),
    [
        ("[server]\nport = 70000\n", {}, [], "server.port"),
        ("[server]\nbogus = 1\n", {}, [], "server.bogus"),
        ("[nosuch]\nx = 1\n", {}, [], "nosuch"),
        ('[local]\nfsync = "sometimes"\n', {}, [], "local.fsync"),
        ("", {"TUSD_PY_SERVER_DRAIN_TIMEOUT": "soon"}, [], "server.drain_timeout"),
        ("", {}, ["--read-size", "12"], "server.read_size"),
        ("", {}, ["--host", "0.0.0.0", "--no-auth"], "auth.enabled"),
        ("[server\n", {}, [], "config"),
    ],
)
def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    toml: str,
    env: dict[str, str],
    flags: list[str],
    key: str,
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code, out, err = check(capsys, "--config", str(path), *flags)
    assert code == 2 and out == ""
    assert err.startswith(f"tusd-py: config error: {key}:"), err


def test_check_config_as_a_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(ROOT)
    example = ROOT / "conf" / "tusd-py.toml"
    good = subprocess.run(
        [sys.executable, "-m", "tusd_py", "check-config", "--config", str(example)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["server"]["drain_timeout"] == 25.0
    bad = subprocess.run(
        [sys.executable, "-m", "tusd_py", "check-config", "--config", str(example), "--workers", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "server.workers" in bad.stderr
