"""``tusd-py upload`` through a link that drops every few MiB and sometimes goes dark (issue #7, 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.faultproxy import MIB, FaultProxy
from tests.e2e.helpers import ServerProcess, make_file, run_cli, sha256_url

SIZE = 200 * MIB


@pytest.mark.slow
def test_200mib_upload_survives_cuts_and_stalls(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    source = tmp_path / "big.bin"
    expected = make_file(source, SIZE, seed=200)
    proxy = FaultProxy(
        live_server.port,
        cut_min=2 * MIB,
        cut_max=8 * MIB,
        stall_probability=0.1,
        stall_seconds=3.0,  # longer than the client's --timeout: a dead link
        max_stalls=3,
        pause_probability=0.1,
        pause_seconds=0.3,  # shorter than --timeout: a hiccup the client sits out
        seed=20260,
        lifetime=300,
    )
    with proxy:
        url = f"http://127.0.0.1:{proxy.port}/files/"
        result = run_cli(
            [
                "upload",
                str(source),
                "--url",
                url,
                "--chunk-size",
                "64MiB",
                "--timeout",
                "2",
                "--retry-delay",
                "0.05",
                "--retries",
                "8",
                "--progress",
                "json",
            ],
            cache_dir,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    upload_url = result.stdout.strip().splitlines()[-1]
    stats = proxy.stats
    # The link really was flaky, in every way the proxy knows.
    assert stats.cuts >= 10, stats
    assert stats.stalls >= 1 and stats.pauses >= 1, stats
    retries = [e for e in result.events if e["event"] == "retry"]
    assert len(retries) >= stats.cuts
    assert any("timed out" in e["reason"] for e in retries), "a stall was detected by the timeout"
    # Byte-identical on the server.
    direct = upload_url.replace(f":{proxy.port}/", f":{live_server.port}/")
    length, digest = sha256_url(direct)
    assert (length, digest) == (SIZE, expected)
    # Nothing acknowledged was sent twice: at most 10% overhead on the wire.
    assert stats.upstream_bytes <= 1.1 * SIZE, (stats.upstream_bytes / SIZE, stats)
    print(
        f"proxy: {stats.upstream_bytes / SIZE:.4f}x upstream, {stats.cuts} cuts, {stats.stalls} stalls, "
        f"{stats.pauses} pauses, {stats.connections} connections"
    )


def test_checksummed_parallel_upload_through_cuts(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    size = 12 * MIB + 7
    source = tmp_path / "summed.bin"
    expected = make_file(source, size, seed=13)
    with FaultProxy(live_server.port, cut_min=1 * MIB, cut_max=3 * MIB, seed=5, lifetime=120) as proxy:
        result = run_cli(
            [
                "upload",
                str(source),
                "--url",
                f"http://127.0.0.1:{proxy.port}/files/",
                "--parallel",
                "2",
                "--checksum",
                "sha1",
                "--chunk-size",
                "512KiB",
                "--retry-delay",
                "0.01",
                "--progress",
                "json",
            ],
            cache_dir,
        )
        cuts = proxy.stats.cuts
    assert result.returncode == 0, result.stderr[-3000:]
    assert cuts >= 3
    final_url = result.stdout.strip().replace(f":{proxy.port}/", f":{live_server.port}/")
    assert sha256_url(final_url) == (size, expected)
    # Every PATCH carried a checksum the server verified (a cut PATCH is discarded whole).
    patches = [r for r in live_server.log_records() if r.get("method") == "PATCH" and r.get("status") == 204]
    assert len(patches) >= size // (512 * 1024)
