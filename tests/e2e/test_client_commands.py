"""``tusd-py status``, ``ls`` and ``download`` (issue #7, 5)."""

from __future__ import annotations

import http.client
import json
import signal
from pathlib import Path
from urllib.parse import urlsplit

from tests.e2e.faultproxy import MIB, FaultProxy
from tests.e2e.helpers import ServerProcess, events, make_file, run_cli, sha256_file, start_cli, wait_until
from tests.e2e.stubserver import Reply, StubServer


def _upload(path: Path, server: ServerProcess, cache: Path) -> str:
    result = run_cli(["upload", str(path), "--url", server.url, "--progress", "none"], cache)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _half_upload(server: ServerProcess, length: int, sent: int) -> str:
    """An upload of ``length`` bytes holding ``sent`` of them."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", "/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(length)})
        created = conn.getresponse()
        created.read()
        location = created.getheader("Location") or ""
        conn.request(
            "PATCH",
            urlsplit(location).path,
            body=b"a" * sent,
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        patched = conn.getresponse()
        patched.read()
        assert patched.status == 204
        return location
    finally:
        conn.close()


def test_status_of_complete_partial_and_unknown_uploads(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    source = tmp_path / "report.csv"
    make_file(source, 1 * MIB + 5, seed=21)
    url = _upload(source, live_server, cache_dir)
    upload_id = url.rsplit("/", 1)[1]

    done = run_cli(["status", upload_id, "--url", live_server.url], cache_dir)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["file_id"] == upload_id
    assert (info["offset"], info["size"], info["percent"]) == (MIB + 5, MIB + 5, 100.0)
    assert info["filename"] == "report.csv"
    assert info["state"] in ("complete", "ready")

    half = _half_upload(live_server, 1000, 250)
    partial = run_cli(["status", half, "--url", live_server.url], cache_dir)  # a full URL works too
    assert partial.returncode == 0, partial.stderr
    info = json.loads(partial.stdout)
    assert (info["offset"], info["size"], info["percent"], info["state"]) == (250, 1000, 25.0, "uploading")

    missing = run_cli(["status", "0" * 32, "--url", live_server.url, "--progress", "none"], cache_dir)
    assert missing.returncode == 4
    assert "HTTP 404" in missing.stderr and "no such upload" in missing.stderr


def test_ls_pages_through_the_listing(cache_dir: Path) -> None:
    first = {
        "items": [
            {"file_id": "a" * 32, "filename": "one.csv", "size": 10, "offset": 10, "state": "complete"},
            {"file_id": "b" * 32, "filename": "two.csv", "size": 20, "offset": 5, "state": "uploading"},
        ],
        "next_cursor": "page-2",
    }
    second = {
        "items": [{"file_id": "c" * 32, "size": 0, "offset": 0, "state": "complete"}],
        "next_cursor": None,
    }
    with StubServer({"GET": [Reply(200, body=first), Reply(200, body=second)]}) as stub:
        plain = run_cli(["ls", "--url", stub.url, "--limit", "2", "--state", "complete"], cache_dir)
        queries = [r.path for r in stub.seen("GET")]
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("a" * 32) and "complete" in lines[0] and "10/10" in lines[0]
    assert lines[0].endswith("one.csv")
    assert "5/20" in lines[1] and lines[2].startswith("c" * 32)
    assert queries == ["/files/?limit=2&state=complete", "/files/?limit=2&state=complete&cursor=page-2"]

    with StubServer({"GET": [Reply(200, body=first), Reply(200, body=second)]}) as stub:
        as_json = run_cli(["ls", "--url", stub.url, "--json"], cache_dir)
    assert [json.loads(line)["file_id"][0] for line in as_json.stdout.splitlines()] == ["a", "b", "c"]


def test_download_interrupted_then_resumed(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    size = 24 * MIB + 3
    source = tmp_path / "dataset.bin"
    expected = make_file(source, size, seed=22)
    url = _upload(source, live_server, cache_dir)
    upload_id = url.rsplit("/", 1)[1]
    target = tmp_path / "out" / "copy.bin"
    target.parent.mkdir()
    part = Path(str(target) + ".part")
    with FaultProxy(live_server.port, fault_directions=(), rate=4 * MIB, lifetime=240) as proxy:
        args = [
            "download",
            upload_id,
            "-o",
            str(target),
            "--url",
            f"http://127.0.0.1:{proxy.port}/files/",
            "--progress",
            "json",
        ]
        log = tmp_path / "download.stderr"
        first = start_cli(args, cache_dir, log)
        try:
            wait_until(
                lambda: part.exists() and part.stat().st_size >= 3 * MIB, 120, "3 MiB in the .part file"
            )
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
            assert first.stdout is not None
            first.stdout.close()
        assert not target.exists()
        kept = part.stat().st_size
        assert 3 * MIB <= kept < size
        assert not any(e["event"] == "done" for e in events(log.read_text()))
        proxy.rate = None
        second = run_cli(args, cache_dir)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.strip() == str(target)
    (resumed,) = [e for e in second.events if e["event"] == "resume"]
    assert resumed["offset"] == kept
    done = next(e for e in second.events if e["event"] == "done")
    assert done["sent"] == size - kept, "only the missing bytes were fetched"
    assert not part.exists()
    assert sha256_file(target) == expected


def test_download_through_a_link_that_drops(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    size = 20 * MIB
    source = tmp_path / "flaky.bin"
    expected = make_file(source, size, seed=23)
    url = _upload(source, live_server, cache_dir)
    out = tmp_path / "out"
    out.mkdir()
    with FaultProxy(
        live_server.port, fault_directions=("down",), cut_min=2 * MIB, cut_max=4 * MIB, lifetime=240
    ) as proxy:
        result = run_cli(
            [
                "download",
                url.replace(f":{live_server.port}/", f":{proxy.port}/"),
                "-o",
                str(out),
                "--url",
                f"http://127.0.0.1:{proxy.port}/files/",
                "--retry-delay",
                "0.01",
                "--progress",
                "json",
            ],
            cache_dir,
        )
        cuts = proxy.stats.cuts
    assert result.returncode == 0, result.stderr[-2000:]
    target = Path(result.stdout.strip())
    assert target.parent == out and target.name == "flaky.bin", "named after the upload's filename"
    assert cuts >= 3
    assert len([e for e in result.events if e["event"] == "retry"]) >= cuts
    assert sha256_file(target) == expected


def test_download_of_an_unfinished_upload_exits_4(
    live_server: ServerProcess, cache_dir: Path, tmp_path: Path
) -> None:
    half = _half_upload(live_server, 1000, 10)
    result = run_cli(["download", half, "-o", str(tmp_path / "x"), "--url", live_server.url], cache_dir)
    assert result.returncode == 4
    assert "not complete yet (10 of 1000 bytes)" in result.stderr
    assert not (tmp_path / "x.part").exists()
