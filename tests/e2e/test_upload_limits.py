"""The README's ``--parallel`` example stays inside a basic user's limits (issue 12, point 4).

A real server with auth on and the default limits (10 creations per minute per
IP and per basic user, 5 uploads at once): ``tusd-py upload s1 s2 s3
--parallel 4`` is 12 partial uploads and 3 final ones. Partials are not
creations, so the three files cost 3 of the 10, and the parts of one file (4)
stream within the 5 slots. ``--retries 0`` makes any 429 fail the run at once
instead of waiting out its ``Retry-After``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import MIB, ServerProcess, make_file, run_cli


@pytest.fixture
def server_auth() -> bool:
    return True


def test_readme_parallel_example_completes_without_a_429(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    files = []
    for index in range(3):
        path = tmp_path / f"s{index + 1}.bin"
        make_file(path, MIB + 1000 * index, seed=20 + index, hole_every=0)
        files.append(str(path))
    result = run_cli(
        [
            "upload",
            *files,
            "--url",
            live_server.url,
            "--parallel",
            "4",
            "--retries",
            "0",
            "--progress",
            "json",
        ],
        cache_dir,
        TUSD_PY_TOKEN=live_server.token("alice", tier="basic"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [e["parts"] for e in result.events if e["event"] == "start"] == [4, 4, 4]
    assert [e for e in result.events if e["event"] in ("retry", "error")] == []
    refused = [r for r in live_server.log_records() if r.get("status") == 429]
    assert refused == [], refused[:3]
    created = [r for r in live_server.log_records() if r.get("method") == "POST" and r.get("status") == 201]
    assert len(created) == 15  # 12 partials + 3 finals, each created once
    done = [(e["size"], e["url"]) for e in result.events if e["event"] == "done"]
    assert done == [(MIB + 1000 * i, url) for i, url in enumerate(result.stdout.split())]
