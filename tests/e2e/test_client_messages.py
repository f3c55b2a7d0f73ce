"""What the client commands say when things go wrong (issue 12, point 8)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.helpers import MIB, ServerProcess, make_file, run_cli, sha256_file
from tests.e2e.stubserver import Reply, StubServer, error_body


def test_ls_on_the_servers_root_says_it_is_no_tus_endpoint_once(
    live_server: ServerProcess, cache_dir: Path
) -> None:
    root = f"http://127.0.0.1:{live_server.port}"
    result = run_cli(["ls", "--url", root], cache_dir)  # stderr is a pipe: JSON events
    assert result.returncode == 4, result.stderr
    assert "upgrade" not in result.stderr
    assert result.stderr.count("does not look like a tus upload endpoint") == 1, result.stderr
    assert f"e.g. {live_server.url}" in result.stderr
    (error,) = [e for e in result.events if e["event"] == "error"]
    assert (error["status"], error["exit_code"]) == (200, 4)  # the root serves the upload page (HTML)
    # the suggested URL works
    assert run_cli(["ls", "--url", live_server.url], cache_dir).returncode == 0


def test_ls_on_a_tus_server_without_listing_says_upgrade(cache_dir: Path) -> None:
    script = {
        "OPTIONS": [Reply(204, {"Tus-Version": "1.0.0", "Tus-Extension": "creation"})],
        "GET": [Reply(405, body=error_body("ERR_METHOD_NOT_ALLOWED", "GET is not allowed"))],
    }
    with StubServer(script) as stub:
        result = run_cli(["ls", "--url", stub.url, "--progress", "none"], cache_dir)
    assert result.returncode == 4
    assert "does not list uploads" in result.stderr and "upgrade the server" in result.stderr


def test_each_upload_error_is_printed_once(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    missing = tmp_path / "missing.bin"
    for progress in ("auto", "json", "none"):
        result = run_cli(
            ["upload", str(missing), "--url", live_server.url, "--progress", progress], cache_dir
        )
        assert result.returncode == 1
        assert result.stderr.count(f"{missing}: cannot open") == 1, (progress, result.stderr)


def test_status_and_download_take_a_full_upload_url_without_url(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    source = tmp_path / "whole.bin"
    digest = make_file(source, MIB + 7, seed=31)
    up = run_cli(["upload", str(source), "--url", live_server.url, "--progress", "none"], cache_dir)
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip()

    status = run_cli(["status", url], cache_dir)
    assert status.returncode == 0, status.stderr
    info = json.loads(status.stdout)
    assert (info["file_id"], info["offset"], info["percent"]) == (url.rsplit("/", 1)[1], MIB + 7, 100.0)

    out = tmp_path / "copy.bin"
    got = run_cli(["download", url, "-o", str(out), "--progress", "none"], cache_dir)
    assert got.returncode == 0, got.stderr
    assert sha256_file(out) == digest

    # a bare id still needs --url: a usage error that says how
    bare = run_cli(["status", url.rsplit("/", 1)[1]], cache_dir)
    assert bare.returncode == 2 and bare.stdout == ""
    assert bare.stderr.count("--url is needed unless ID is a full upload URL") == 1, bare.stderr
