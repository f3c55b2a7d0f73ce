"""The CLI against a real server with auth on, with tokens from ``tusd-py token``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import MIB, ServerProcess, make_file, run_cli, sha256_file


@pytest.fixture
def server_auth() -> bool:
    return True


def test_upload_status_ls_download_with_a_token(tmp_path: Path, live_server: ServerProcess) -> None:
    cache = tmp_path / "cache"
    source = tmp_path / "notes.bin"
    digest = make_file(source, 2 * MIB + 3, seed=8)
    alice = live_server.token("alice")
    url = live_server.url

    up = run_cli(["upload", str(source), "--url", url, "--progress", "none"], cache, TUSD_PY_TOKEN=alice)
    assert up.returncode == 0, up.stderr
    upload_id = up.stdout.strip().rsplit("/", 1)[1]

    status = run_cli(["status", upload_id, "--url", url, "--token", alice], cache)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["percent"] == 100.0

    listing = run_cli(["ls", "--url", url, "--json"], cache, TUSD_PY_TOKEN=alice)
    assert listing.returncode == 0, listing.stderr
    assert upload_id in listing.stdout

    out = tmp_path / "out.bin"
    got = run_cli(
        ["download", upload_id, "-o", str(out), "--url", url, "--progress", "none"],
        cache,
        TUSD_PY_TOKEN=alice,
    )
    assert got.returncode == 0, got.stderr
    assert sha256_file(out) == digest

    # another user does not see it: 404, exit 4
    bob = run_cli(
        ["status", upload_id, "--url", url, "--progress", "none"],
        cache,
        TUSD_PY_TOKEN=live_server.token("bob"),
    )
    assert bob.returncode == 4 and "HTTP 404" in bob.stderr


@pytest.mark.parametrize("token", [None, "not-a-jwt"], ids=["no-token", "bad-token"])
def test_refused_credentials_exit_3_with_the_servers_reason(
    tmp_path: Path, live_server: ServerProcess, token: str | None
) -> None:
    source = tmp_path / "a.bin"
    make_file(source, 1000, seed=2)
    env = {"TUSD_PY_TOKEN": token} if token else {}
    res = run_cli(
        ["upload", str(source), "--url", live_server.url, "--progress", "none"], tmp_path / "cache", **env
    )
    assert res.returncode == 3, res.stderr
    assert "HTTP 401" in res.stderr and "--token" in res.stderr
