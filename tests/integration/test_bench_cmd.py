"""``tusd-py bench`` against the in-process server, with tiny sizes.

The bench client is blocking, so it runs in an executor thread while the
server runs on the test's IOLoop.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tusd_py.cli import bench as bench_cmd
from tusd_py.cli import main as cli
from tusd_py.cli.benchmark.loadclient import PATTERN_LEN, Pattern
from tusd_py.cli.benchmark.scenarios import SINGLE_SEED

TINY = [
    "--size",
    "200K",
    "--chunk",
    "64K",
    "--create-n",
    "5",
    "--head-n",
    "5",
    "--conc-k",
    "3",
    "--conc-size",
    "96K",
]


async def run_bench(*argv: str) -> int:
    loop = asyncio.get_running_loop()
    return int(await loop.run_in_executor(None, functools.partial(cli.main, ["bench", *argv])))


def stored_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "uploads").iterdir())


@pytest.mark.gen_test(timeout=60)
async def test_all_scenarios_json(base_url: str, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_bench(
        "--url", f"{base_url}/files/", "--scenarios", "create,head,upload,chunked,concurrent",
        *TINY, "--server-pid", str(os.getpid()), "--json",
    )  # fmt: skip

    assert code == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    results = {(r["scenario"], r["variant"]): r for r in report["results"]}
    assert set(results) == {
        ("create", "n=5"),
        ("head", "n=5"),
        ("upload", "200K one PATCH"),
        ("upload", "200K in 64K PATCHes"),
        ("concurrent", "3x96K in 64K PATCHes"),
    }
    for r in results.values():
        assert r["ok"] and r["errors"] == 0 and r["value"] > 0, r
        assert r["usage"]["rss_peak_kib"] > 0
    assert results[("create", "n=5")]["count"] == 5
    assert results[("concurrent", "3x96K in 64K PATCHes")]["bytes"] == 3 * 96 * 1024
    assert results[("upload", "200K one PATCH")]["cpu_per_gib"] is not None
    assert stored_files(data_dir) == [], "the bench did not terminate its uploads"


@pytest.mark.gen_test(timeout=60)
async def test_table_and_keep(base_url: str, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = await run_bench("--url", f"{base_url}/files/", "--scenarios", "upload", *TINY, "--keep")

    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("| scenario | variant | value | unit |")
    assert "| upload | 200K one PATCH |" in out
    (kept,) = stored_files(data_dir)
    expected = hashlib.sha256(b"".join(Pattern(SINGLE_SEED).blocks(0, 200 * 1024))).hexdigest()
    assert hashlib.sha256(kept.read_bytes()).hexdigest() == expected


def test_token_and_headers_become_request_headers() -> None:
    args = cli.build_parser().parse_args(
        ["bench", "--url", "http://127.0.0.1:9/files/", "--token", "t0k", "--header", "X-Trace: a:b"]
    )
    assert bench_cmd.headers_from_args(args) == {"Authorization": "Bearer t0k", "X-Trace": "a:b"}


def test_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = services.free_port()
    code = cli.main(["bench", "--url", f"http://127.0.0.1:{port}/files/", "--scenarios", "create"])
    assert code == 1
    assert "tusd-py bench:" in capsys.readouterr().err


def test_unknown_scenario_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "--url", "http://127.0.0.1:9/files/", "--scenarios", "create,fly"])
    assert exit_info.value.code == 2
    assert "unknown scenario 'fly'" in capsys.readouterr().err


def test_pattern_blocks_are_the_cyclic_pattern() -> None:
    pattern = Pattern(5)
    whole = b"".join(pattern.blocks(0, 2 * PATTERN_LEN + 10))
    assert len(whole) == 2 * PATTERN_LEN + 10
    assert whole[PATTERN_LEN : 2 * PATTERN_LEN] == whole[:PATTERN_LEN]
    middle = b"".join(pattern.blocks(PATTERN_LEN - 3, PATTERN_LEN + 5, block=4))
    assert middle == whole[PATTERN_LEN - 3 : PATTERN_LEN + 5]
    assert pattern.sha256(1000) == hashlib.sha256(whole[:1000]).hexdigest()
