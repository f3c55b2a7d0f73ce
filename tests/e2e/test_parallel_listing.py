"""``tusd-py upload --parallel`` then ``tusd-py ls`` (issue 12.5): the listing
shows the file once — its partial uploads are hidden (``include=partial``
shows them) and carry the normal expiry until they are retired."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

from tests.e2e.faultproxy import MIB
from tests.e2e.helpers import ServerProcess, make_file, run_cli


def listing(server: ServerProcess, query: str = "") -> list[dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", f"/files/{query}")
        res = conn.getresponse()
        body = res.read()
        assert res.status == 200, body
        return list(json.loads(body)["items"])
    finally:
        conn.close()


def test_ls_after_a_parallel_upload_shows_the_file_once(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    source = tmp_path / "video.bin"
    make_file(source, 3 * MIB + 7, seed=12)
    uploaded = run_cli(
        ["upload", str(source), "--url", live_server.url, "--parallel", "3", "--progress", "none"], cache_dir
    )
    assert uploaded.returncode == 0, uploaded.stderr[-3000:]
    final_id = uploaded.stdout.strip().rsplit("/", 1)[1]

    listed = run_cli(["ls", "--url", live_server.url, "--json"], cache_dir)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["file_id"] for row in rows] == [final_id]
    assert rows[0]["filename"] == "video.bin"

    everything = listing(live_server, "?include=partial")
    partials = [row for row in everything if row["file_id"] != final_id]
    assert len(partials) == 3
    assert all(row["expires_at"] is not None for row in partials)  # retired, not kept forever
