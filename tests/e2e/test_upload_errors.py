"""Exit codes and messages of ``tusd-py upload`` on permanent errors; 429 waited out (issue #7, 4)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.e2e.faultproxy import MIB
from tests.e2e.helpers import ServerProcess, make_file, run_cli
from tests.e2e.stubserver import Reply, StubServer, error_body

UPLOAD_PATH = "/files/0123456789abcdef0123456789abcdef"
SIZE = 256 * 1024


@pytest.fixture
def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "doc.bin"
    make_file(path, SIZE, seed=9, hole_every=0)
    return path


def _upload(path: Path, url: str, cache: Path, *extra: str, **env: str) -> tuple[int, str, list[dict]]:  # type: ignore[type-arg]
    result = run_cli(
        ["upload", str(path), "--url", url, "--progress", "json", "--retry-delay", "0.01", *extra],
        cache,
        timeout=120,
        **env,
    )
    return result.returncode, result.stderr, result.events


def _human(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("{"))


@pytest.mark.parametrize(
    ("status", "code", "message", "exit_code", "advice"),
    [
        (401, "ERR_UNAUTHENTICATED", "missing, invalid or expired bearer token", 3, "--token"),
        (403, "ERR_FORBIDDEN", "tier basic may not create uploads", 3, "not allowed"),
    ],
)
def test_auth_failures_exit_3_with_advice(
    small_file: Path, cache_dir: Path, status: int, code: str, message: str, exit_code: int, advice: str
) -> None:
    headers = {"WWW-Authenticate": 'Bearer realm="tusd-py"'} if status == 401 else {}
    with StubServer({"POST": [Reply(status, headers, error_body(code, message))]}) as stub:
        rc, stderr, events = _upload(small_file, stub.url, cache_dir, TUSD_PY_TOKEN="tok-123")
        (post,) = stub.seen("POST")  # a permanent error is not retried
    assert rc == exit_code
    assert post.headers["Authorization"] == "Bearer tok-123"
    assert post.headers["Tus-Resumable"] == "1.0.0"
    human = _human(stderr)
    assert f"HTTP {status} {code}: {message}" in human
    assert advice in human and "What to do:" in human
    error = next(e for e in events if e["event"] == "error")
    assert (error["status"], error["code"], error["exit_code"]) == (status, code, exit_code)


@pytest.mark.parametrize("when", ["before-body", "mid-body"])
def test_file_type_refused_exits_4(tmp_path: Path, cache_dir: Path, when: str) -> None:
    # Mid-body, the body is far larger than the socket buffers: the client is still
    # sending when the server answers and closes, and must read that answer.
    size = 16 * MIB if when == "mid-body" else SIZE
    source = tmp_path / "prog.bin"
    make_file(source, size, seed=11)
    refusal = Reply(
        415,
        body=error_body("ERR_FILE_TYPE_NOT_ALLOWED", "type application/x-executable is not allowed"),
        continue_=when == "mid-body",
        read_limit=8192 if when == "mid-body" else None,
    )
    script = {"POST": [Reply(201, {"Location": UPLOAD_PATH})], "PATCH": [refusal]}
    with StubServer(script) as stub:
        rc, stderr, _events = _upload(source, stub.url, cache_dir)
        patches = stub.seen("PATCH")
    assert rc == 4, stderr
    assert len(patches) == 1
    if when == "before-body":
        assert patches[0].body_read == 0 and patches[0].headers["Expect"] == "100-continue"
    human = _human(stderr)
    assert "HTTP 415 ERR_FILE_TYPE_NOT_ALLOWED: type application/x-executable is not allowed" in human
    assert "file type" in human.split("What to do:", 1)[1]


@pytest.mark.parametrize("server_args", [["--max-size", "1MiB"]])
def test_too_large_for_the_real_server_exits_4(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    big = tmp_path / "big.bin"
    make_file(big, 2 * MIB, seed=10)
    rc, stderr, events = _upload(big, live_server.url, cache_dir)
    assert rc == 4
    human = _human(stderr)
    assert "HTTP 413 ERR_MAX_SIZE_EXCEEDED" in human and "1048576" in human
    assert "larger than the server accepts" in human
    assert not any(e["event"] == "retry" for e in events)


def test_wrong_url_exits_4_and_says_so(small_file: Path, live_server: ServerProcess, cache_dir: Path) -> None:
    wrong = live_server.url.replace("/files/", "/uploads/")
    rc, stderr, _events = _upload(small_file, wrong, cache_dir)
    assert rc == 4
    assert "HTTP 404" in stderr and "check --url" in stderr


def test_429_retry_after_is_waited_out(small_file: Path, cache_dir: Path) -> None:
    script = {
        "POST": [
            Reply(429, {"Retry-After": "1"}, error_body("ERR_RATE_LIMITED", "10 uploads per minute")),
            Reply(201, {"Location": UPLOAD_PATH}),
        ],
        "PATCH": [Reply(204, {"Upload-Offset": str(SIZE)})],
    }
    with StubServer(script) as stub:
        rc, stderr, events = _upload(small_file, stub.url, cache_dir)
        posts, patches = stub.seen("POST"), stub.seen("PATCH")
    assert rc == 0, stderr
    assert len(posts) == 2 and len(patches) == 1 and patches[0].body_read == SIZE
    (retry,) = [e for e in events if e["event"] == "retry"]
    assert (retry["status"], retry["code"], retry["retry_after"]) == (429, "ERR_RATE_LIMITED", 1.0)
    assert retry["delay"] >= 1.0, "the client waited at least what Retry-After asked"
    kinds = [e["event"] for e in events]
    assert kinds.index("retry") < kinds.index("created") < kinds.index("done")


def test_locked_upload_is_retried_after_resync(small_file: Path, cache_dir: Path) -> None:
    script = {
        "POST": [Reply(201, {"Location": UPLOAD_PATH})],
        "PATCH": [
            Reply(423, {"Retry-After": "1"}, error_body("ERR_LOCK_TIMEOUT", "locked"), continue_=False),
            Reply(204, {"Upload-Offset": str(SIZE)}),
        ],
        "HEAD": [Reply(200, {"Upload-Offset": "0", "Upload-Length": str(SIZE)})],
    }
    with StubServer(script) as stub:
        rc, stderr, events = _upload(small_file, stub.url, cache_dir)
        patches = stub.seen("PATCH")
    assert rc == 0, stderr
    assert [p.body_read for p in patches] == [0, SIZE]
    assert [e["status"] for e in events if e["event"] == "retry"] == [423]
    assert [e["offset"] for e in events if e["event"] == "resync"] == [0]


def test_unreachable_server_gives_up_with_exit_5(small_file: Path, cache_dir: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        rc, stderr, events = _upload(
            small_file, f"http://127.0.0.1:{port}/files/", cache_dir, "--retries", "2"
        )
    assert rc == 5
    assert "gave up after 3 attempts" in stderr and "connection refused" in stderr
    assert len([e for e in events if e["event"] == "retry"]) == 2


def test_other_files_go_on_after_one_fails(
    tmp_path: Path, live_server: ServerProcess, cache_dir: Path
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    good = tmp_path / "good.bin"
    make_file(good, 100_000, seed=12, hole_every=0)
    missing = tmp_path / "missing.bin"
    result = run_cli(
        ["upload", str(missing), str(empty), str(good), "--url", live_server.url, "--progress", "json"],
        cache_dir,
    )
    assert result.returncode == 1
    assert f"{missing}: cannot open" in _human(result.stderr)
    urls = result.stdout.split()
    assert len(urls) == 2
    error = next(e for e in result.events if e["event"] == "error")
    assert error["file"] == str(missing) and error["exit_code"] == 1
    sizes = [e["size"] for e in result.events if e["event"] == "done"]
    assert sizes == [0, 100_000]


def test_checksum_the_server_lacks_exits_4(small_file: Path, cache_dir: Path) -> None:
    script = {"OPTIONS": [Reply(204, {"Tus-Version": "1.0.0", "Tus-Extension": "creation,termination"})]}
    with StubServer(script) as stub:
        rc, stderr, _events = _upload(small_file, stub.url, cache_dir, "--checksum", "md5")
        assert stub.seen("POST") == []
    assert rc == 4
    assert "does not support Upload-Checksum with md5" in stderr and "What to do:" in stderr
