"""``tusd-py upload`` killed mid-upload resumes from the server's offset (issue #7, 2)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.e2e.faultproxy import MIB, FaultProxy
from tests.e2e.helpers import (
    ServerProcess,
    events,
    head,
    make_file,
    run_cli,
    sha256_url,
    start_cli,
    wait_until,
)

SIZE = 40 * MIB


def test_sigkill_mid_upload_then_rerun_resumes(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    source = tmp_path / "video.bin"
    expected = make_file(source, SIZE, seed=2)
    # A slow link, so the kill lands mid-upload whatever the machine's speed.
    with FaultProxy(live_server.port, fault_directions=(), rate=4 * MIB, lifetime=240) as proxy:
        url = f"http://127.0.0.1:{proxy.port}/files/"
        args = ["upload", str(source), "--url", url, "--chunk-size", "1MiB", "--progress", "json"]
        first_log = tmp_path / "first.stderr"
        first = start_cli(args, cache_dir, first_log)
        try:
            acked = wait_until(
                lambda: (
                    max(
                        [e["acked"] for e in events(first_log.read_text()) if e["event"] == "progress"] or [0]
                    )
                    >= 3 * MIB
                ),
                120,
                "the first run to get 3 MiB acknowledged",
            )
            assert acked
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            assert first.stdout is not None
            first.stdout.close()
        assert first.returncode == -signal.SIGKILL
        first_events = events(first_log.read_text())
        upload_url = next(e["url"] for e in first_events if e["event"] == "created")
        assert not any(e["event"] == "done" for e in first_events)
        # The resume store holds the upload's URL (that is how the re-run finds it).
        store = json.loads((cache_dir / "tusd-py" / "resume.json").read_text())
        assert [e["url"] for e in store["entries"].values()] == [upload_url]

        proxy.rate = None  # the link gets fast again
        second = run_cli(args, cache_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.strip() == upload_url
    resumed = [e for e in second.events if e["event"] == "resume"]
    assert len(resumed) == 1 and resumed[0]["url"] == upload_url
    offset = resumed[0]["offset"]
    assert offset >= 3 * MIB, "resumed from where the server was, not from zero"
    assert not any(e["event"] == "created" for e in second.events)
    done = next(e for e in second.events if e["event"] == "done")
    # Only what the server lacked was sent again (less if it saved more after the HEAD).
    assert 0 < done["sent"] <= SIZE - offset
    direct = upload_url.replace(f":{proxy.port}/", f":{live_server.port}/")
    assert head(direct)["upload-offset"] == str(SIZE)
    assert sha256_url(direct) == (SIZE, expected)


def test_rerun_of_a_finished_upload_sends_nothing(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    source = tmp_path / "small.bin"
    make_file(source, 3 * MIB + 17, seed=3)
    args = ["upload", str(source), "--url", live_server.url, "--progress", "json"]
    first = run_cli(args, cache_dir)
    assert first.returncode == 0, first.stderr
    again = run_cli(args, cache_dir)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert [e["offset"] for e in again.events if e["event"] == "resume"] == [3 * MIB + 17]
    assert next(e for e in again.events if e["event"] == "done")["sent"] == 0
    # Touching the file changes its fingerprint: a new upload.
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    third = run_cli(args, cache_dir)
    assert third.returncode == 0 and third.stdout != first.stdout
    assert any(e["event"] == "created" for e in third.events)
