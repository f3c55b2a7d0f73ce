"""``tusd-py upload --parallel 4``: partial uploads joined by concatenation (issue #7, 3)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

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


def _partials(concat: str) -> list[str]:
    assert concat.startswith("final;"), concat
    return concat[len("final;") :].split()


def test_parallel_4_makes_a_final_concatenated_upload(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    size = 24 * MIB + 12345
    source = tmp_path / "four.bin"
    expected = make_file(source, size, seed=4)
    result = run_cli(
        [
            "upload",
            str(source),
            "--url",
            live_server.url,
            "--parallel",
            "4",
            "--chunk-size",
            "2MiB",
            "--progress",
            "json",
        ],
        cache_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    final_url = result.stdout.strip()
    info = head(final_url)
    assert info["status"] == "200"
    assert info["upload-offset"] == info["upload-length"] == str(size)
    partials = _partials(info["upload-concat"])
    assert len(partials) == 4
    lengths = []
    for url in partials:
        part = head(url)
        assert part["upload-concat"] == "partial"
        assert part["upload-offset"] == part["upload-length"]
        lengths.append(int(part["upload-length"]))
    assert sum(lengths) == size and max(lengths) - min(lengths) <= 1
    created = [e for e in result.events if e["event"] == "created"]
    assert sorted(e["part"] for e in created if "part" in e) == [0, 1, 2, 3]
    assert sha256_url(final_url) == (size, expected)


def test_parallel_parts_resume_after_sigkill(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    size = 64 * MIB
    source = tmp_path / "four-killed.bin"
    expected = make_file(source, size, seed=5)
    with FaultProxy(live_server.port, fault_directions=(), rate=2 * MIB, lifetime=240) as proxy:
        args = [
            "upload",
            str(source),
            "--url",
            f"http://127.0.0.1:{proxy.port}/files/",
            "--parallel",
            "4",
            "--chunk-size",
            "1MiB",
            "--progress",
            "json",
        ]
        log = tmp_path / "first.stderr"
        first = start_cli(args, cache_dir, log)
        try:

            def started() -> bool:
                seen = events(log.read_text())
                parts = {e["part"] for e in seen if e["event"] == "created" and "part" in e}
                acked = max([e["acked"] for e in seen if e["event"] == "progress"] or [0])
                return parts == {0, 1, 2, 3} and acked >= 6 * MIB

            wait_until(started, 120, "all 4 parts created and 6 MiB acknowledged")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            assert first.stdout is not None
            first.stdout.close()
        store = json.loads((cache_dir / "tusd-py" / "resume.json").read_text())
        (entry,) = store["entries"].values()
        assert entry["mode"] == "parallel" and entry["final_url"] is None
        stored_parts = [p["url"] for p in entry["parts"]]
        assert all(stored_parts)
        proxy.rate = None
        second = run_cli(args, cache_dir)
    assert second.returncode == 0, second.stderr[-3000:]
    resumed = {e["part"]: e for e in second.events if e["event"] == "resume"}
    assert sorted(resumed) == [0, 1, 2, 3]
    assert [resumed[i]["url"] for i in range(4)] == stored_parts
    assert sum(e["offset"] for e in resumed.values()) >= 6 * MIB
    assert not any(e["event"] == "created" and "part" in e for e in second.events)
    final_url = second.stdout.strip().replace(f":{proxy.port}/", f":{live_server.port}/")
    assert sha256_url(final_url) == (size, expected)


@pytest.mark.parametrize(
    ("sig", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"]
)
def test_interrupt_stops_every_part_and_the_rerun_finishes(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path, sig: signal.Signals, exit_code: int
) -> None:
    """Ctrl-C and SIGTERM (e.g. systemd, ``kill``) both stop every part, print the
    resume hint and keep the resume state; the exit codes tell them apart."""
    size = 32 * MIB
    source = tmp_path / "interrupted.bin"
    expected = make_file(source, size, seed=6)
    with FaultProxy(live_server.port, fault_directions=(), rate=1 * MIB, lifetime=240) as proxy:
        args = [
            "upload",
            str(source),
            "--url",
            f"http://127.0.0.1:{proxy.port}/files/",
            "--parallel",
            "3",
            "--chunk-size",
            "1MiB",
            "--progress",
            "json",
        ]
        log = tmp_path / "first.stderr"
        first = start_cli(args, cache_dir, log)
        try:
            wait_until(
                lambda: (
                    max([e["acked"] for e in events(log.read_text()) if e["event"] == "progress"] or [0])
                    >= 2 * MIB
                ),
                120,
                "2 MiB acknowledged",
            )
            first.send_signal(sig)
            assert first.wait(60) == exit_code
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
            assert first.stdout is not None
            first.stdout.close()
        hint = [line for line in log.read_text().splitlines() if line.startswith("tusd-py upload: ")]
        assert len(hint) == 1 and hint[0].endswith("; run the same command again to resume"), hint
        proxy.rate = None
        second = run_cli(args, cache_dir)
    assert second.returncode == 0, second.stderr[-2000:]
    assert len([e for e in second.events if e["event"] == "resume"]) == 3
    final_url = second.stdout.strip().replace(f":{proxy.port}/", f":{live_server.port}/")
    assert sha256_url(final_url) == (size, expected)
