"""``tusd-py upload --checksum sha256`` → the status document shows the file's
digest (issue 12.7), with the real CLI against a real ``serve`` subprocess."""

from __future__ import annotations

import hashlib
import http.client
import json
from pathlib import Path

from tests.e2e.faultproxy import MIB
from tests.e2e.helpers import ServerProcess, make_file, run_cli


def status_of(server: ServerProcess, upload_id: str) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", f"/index-status/{upload_id}")
        res = conn.getresponse()
        body = res.read()
        assert res.status == 200, body
        return dict(json.loads(body))
    finally:
        conn.close()


def test_upload_with_checksum_shows_the_file_digest(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    for seed, (algorithm, chunk) in enumerate((("sha256", "256KiB"), ("md5", "8MiB"))):
        source = tmp_path / f"photo-{algorithm}.raw"  # one file each: the CLI resumes a file it sent
        digest = make_file(source, MIB + 12_345, seed=seed)
        result = run_cli(
            [
                "upload",
                str(source),
                "--url",
                live_server.url,
                "--checksum",
                algorithm,
                "--chunk-size",
                chunk,
                "--progress",
                "none",
            ],
            cache_dir,
        )
        assert result.returncode == 0, result.stderr
        upload_id = result.stdout.strip().rsplit("/", 1)[1]
        status = status_of(live_server, upload_id)
        assert status["state"] == "complete"
        expected = digest if algorithm == "sha256" else hashlib.md5(source.read_bytes()).hexdigest()
        assert status["checksum"] == f"{algorithm}:{expected}"
    source = tmp_path / "plain.raw"
    make_file(source, 70_000, seed=9)
    plain = run_cli(["upload", str(source), "--url", live_server.url, "--progress", "none"], cache_dir)
    assert plain.returncode == 0, plain.stderr
    assert status_of(live_server, plain.stdout.strip().rsplit("/", 1)[1])["checksum"] is None
