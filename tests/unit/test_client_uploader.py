"""The resumable upload loop against an in-memory tus server with injected faults.

The fake transport plays a tus server: it stores bytes, checks offsets, and
can cut a PATCH after N body bytes (keeping them, as the real server does),
answer a status, or report a stale offset on HEAD. Sleeping goes to a fake
clock, randomness is fixed: every assertion is exact.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from tusd_py.cli.client.errors import ClientError, GaveUp, PermanentError, TransportError
from tusd_py.cli.client.filejob import FileUpload, UploadOptions, plan_parts
from tusd_py.cli.client.progress import FileProgress, JsonLinesReporter
from tusd_py.cli.client.resume_store import ResumeStore
from tusd_py.cli.client.retry import BackoffPolicy
from tusd_py.cli.client.transport import Body, Headers, Response
from tusd_py.cli.client.tus import TusSession
from tusd_py.cli.client.uploader import RangeUploader, checksum_header

ENDPOINT = "http://tus.test/files/"


class FakeResponse(Response):
    def __init__(self, status: int, headers: Mapping[str, str], body: bytes = b"") -> None:
        super().__init__(status, "", Headers(list(headers.items())), None, lambda: None)
        self._body = body

    def read(self, limit: int = 1 << 16) -> bytes:
        body, self._body = self._body, b""
        return body[:limit]


class FakeTus:
    """An in-memory tus server behind the Transport interface."""

    def __init__(self) -> None:
        self.uploads: dict[str, bytearray] = {}
        self.lengths: dict[str, int] = {}
        self.patch_faults: list[tuple[Any, ...]] = []
        self.head_lag: list[int] = []
        self.received = 0
        self.patch_offsets: list[int] = []
        self.log: list[tuple[str, int]] = []
        self.on_patch: Callable[[], None] | None = None
        self._next = 0

    def close(self) -> None:
        return None

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Body | None = None,
        on_sent: Callable[[int], None] | None = None,
    ) -> Response:
        assert headers["Tus-Resumable"] == "1.0.0"
        upload_id = url.rsplit("/", 1)[-1]
        if method == "POST":
            self._next += 1
            new_id = f"u{self._next}"
            self.uploads[new_id] = bytearray()
            self.lengths[new_id] = int(headers["Upload-Length"])
            self.log.append(("POST", 201))
            return FakeResponse(201, {"Location": f"/files/{new_id}"})
        if upload_id not in self.uploads:
            self.log.append((method, 404))
            return FakeResponse(404, {})
        data = self.uploads[upload_id]
        if method == "HEAD":
            offset = len(data) - (self.head_lag.pop(0) if self.head_lag else 0)
            self.log.append(("HEAD", 200))
            return FakeResponse(
                200, {"Upload-Offset": str(offset), "Upload-Length": str(self.lengths[upload_id])}
            )
        assert method == "PATCH" and body is not None
        if self.on_patch is not None:
            self.on_patch()
        offset = int(headers["Upload-Offset"])
        self.patch_offsets.append(offset)
        if offset != len(data):
            self.log.append(("PATCH", 409))
            return FakeResponse(409, {}, b'{"error": {"code": "ERR_MISMATCHED_OFFSET", "message": "moved"}}')
        fault = self.patch_faults.pop(0) if self.patch_faults else None
        if fault and fault[0] == "status":
            self.log.append(("PATCH", fault[1]))
            extra = {"Retry-After": str(fault[2])} if len(fault) > 2 else {}
            return FakeResponse(fault[1], extra, b'{"error": {"code": "ERR_X", "message": "no"}}')
        limit = fault[1] if fault and fault[0] == "cut" else body.length
        chunk = bytearray()
        while len(chunk) < limit:
            block = body.read(min(65536, limit - len(chunk)))
            if not block:
                break
            chunk += block
            if on_sent is not None:
                on_sent(len(block))
        checksum = headers.get("Upload-Checksum")
        if checksum:
            algorithm, digest = checksum.split(" ")
            assert base64.b64decode(digest) == hashlib.new(algorithm, bytes(chunk)).digest()
        data += chunk
        self.received += len(chunk)
        if fault and fault[0] == "cut":
            self.log.append(("PATCH", 0))
            raise TransportError("connection reset by peer", sent=len(chunk))
        self.log.append(("PATCH", 204))
        return FakeResponse(204, {"Upload-Offset": str(len(data))})


class FakeClock:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def content(tmp_path: Path) -> tuple[Path, bytes]:
    data = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4
    path = tmp_path / "payload.bin"
    path.write_bytes(data)
    return path, data


def _progress() -> tuple[FileProgress, io.StringIO]:
    stream = io.StringIO()
    return FileProgress(JsonLinesReporter(stream, interval=0.0), "payload.bin", 0), stream


def _run(
    fake: FakeTus,
    path: Path,
    *,
    chunk: int = 256 * 1024,
    policy: BackoffPolicy | None = None,
    checksum: str | None = None,
) -> tuple[str, FakeClock, io.StringIO]:
    session = TusSession(fake)
    url = session.create(ENDPOINT, path.stat().st_size, {})
    clock = FakeClock()
    progress, stream = _progress()
    uploader = RangeUploader(
        session,
        policy=policy or BackoffPolicy(rng=lambda: 0.0),
        clock=clock,
        progress=progress,
        chunk_size=chunk,
        checksum=checksum,
    )
    with open(path, "rb") as handle:
        uploader.run(url, handle.fileno(), 0, path.stat().st_size, 0)
    return url, clock, stream


def test_cuts_resume_without_resending_acknowledged_bytes(content: tuple[Path, bytes]) -> None:
    path, data = content
    fake = FakeTus()
    fake.patch_faults = [("cut", 1000), ("cut", 0), ("cut", 70_000), ("cut", 1)]
    url, clock, _ = _run(fake, path)
    upload_id = url.rsplit("/", 1)[1]
    assert bytes(fake.uploads[upload_id]) == data
    assert fake.received == len(data), "no byte reached the server twice"
    # Every PATCH started exactly at the server's offset: no 409s were needed.
    assert ("PATCH", 409) not in fake.log
    # A cut after progress waits the first delay; the cut that moved nothing counts as a 2nd failure.
    assert clock.sleeps == [0.125, 0.125, 0.25, 0.125]


def test_stale_head_costs_one_immediate_resync(content: tuple[Path, bytes]) -> None:
    path, data = content
    fake = FakeTus()
    fake.patch_faults = [("cut", 5000)]
    fake.head_lag = [4000]  # the first HEAD after the cut reports 4000 bytes less than held
    url, clock, stream = _run(fake, path)
    assert bytes(fake.uploads[url.rsplit("/", 1)[1]]) == data
    assert fake.log.count(("PATCH", 409)) == 1
    assert clock.sleeps == [0.125], "the 409 re-sync did not wait"
    assert fake.received == len(data)
    resyncs = [line for line in stream.getvalue().splitlines() if '"resync"' in line]
    assert len(resyncs) == 2 and '"offset":1000' in resyncs[0] and '"offset":5000' in resyncs[1]


def test_locked_upload_waits_for_retry_after(content: tuple[Path, bytes]) -> None:
    path, data = content
    fake = FakeTus()
    fake.patch_faults = [("status", 423, 3), ("status", 503)]
    url, clock, stream = _run(fake, path)
    assert bytes(fake.uploads[url.rsplit("/", 1)[1]]) == data
    assert clock.sleeps == [3.0, 0.25]
    assert '"retry_after":3' in stream.getvalue()


def test_gives_up_after_the_budget_when_nothing_moves(content: tuple[Path, bytes]) -> None:
    path, _ = content
    fake = FakeTus()
    fake.patch_faults = [("status", 500)] * 10
    with pytest.raises(GaveUp) as caught:
        _run(fake, path, policy=BackoffPolicy(initial=1.0, max_attempts=3, rng=lambda: 0.0))
    assert "gave up after 4 attempts" in str(caught.value) and "HTTP 500 ERR_X" in str(caught.value)
    assert caught.value.exit_code == 5


def test_permanent_status_stops_with_advice(content: tuple[Path, bytes]) -> None:
    path, _ = content
    fake = FakeTus()
    fake.patch_faults = [("status", 413)]
    with pytest.raises(PermanentError) as caught:
        _run(fake, path)
    message = str(caught.value)
    assert caught.value.exit_code == 4 and caught.value.status == 413
    assert "HTTP 413 ERR_X: no" in message and "What to do:" in message


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5", "crc32"])
def test_checksum_header_matches_the_bytes(tmp_path: Path, algorithm: str) -> None:
    data = bytes(range(256)) * 9000
    path = tmp_path / "c.bin"
    path.write_bytes(data)
    with open(path, "rb") as handle:
        header = checksum_header(handle.fileno(), 1000, 2_000_000, algorithm)
    name, digest = header.split(" ")
    piece = data[1000:2_001_000]
    if algorithm == "crc32":
        import zlib

        expected = zlib.crc32(piece).to_bytes(4, "big")
    else:
        expected = hashlib.new(algorithm, piece).digest()
    assert name == algorithm and base64.b64decode(digest) == expected


def test_checksummed_patches_are_verified(content: tuple[Path, bytes]) -> None:
    path, data = content
    fake = FakeTus()
    url, _, _ = _run(fake, path, checksum="sha1")
    assert bytes(fake.uploads[url.rsplit("/", 1)[1]]) == data


def test_plan_parts() -> None:
    assert plan_parts(10, 4) == [(0, 10)]  # too small to split
    mib = 1 << 20
    assert plan_parts(4 * mib + 2, 4) == [
        (0, mib + 1),
        (mib + 1, mib + 1),
        (2 * mib + 2, mib),
        (3 * mib + 2, mib),
    ]
    assert plan_parts(0, 8) == [(0, 0)]


def test_file_upload_resumes_from_the_store_and_recreates_a_lost_upload(
    tmp_path: Path, content: tuple[Path, bytes]
) -> None:
    path, data = content
    fake = FakeTus()
    store = ResumeStore(tmp_path / "cache")
    stream = io.StringIO()

    def job() -> FileUpload:
        return FileUpload(
            str(path),
            UploadOptions(endpoint=ENDPOINT, chunk_size=300_000, policy=BackoffPolicy(rng=lambda: 0.0)),
            store=store,
            reporter=JsonLinesReporter(stream),
            transport_factory=lambda: fake,
            clock=FakeClock(),
            cancel=threading.Event(),
        )

    fake.patch_faults = [("status", 401)]
    with pytest.raises(PermanentError):
        job().run()
    (entry,) = [store.get(k) for k in store.keys()]
    assert entry is not None and entry["url"].endswith("/files/u1") and not entry["complete"]
    first = job().run()
    assert first.url.endswith("/files/u1") and first.resumed and first.sent == len(data)
    assert bytes(fake.uploads["u1"]) == data
    # The server forgets the upload: the next run of the same file creates a new one.
    del fake.uploads["u1"]
    again = job().run()
    assert again.url.endswith("/files/u2") and not again.resumed
    assert bytes(fake.uploads["u2"]) == data
    assert "is gone" in stream.getvalue()


def test_a_file_changed_during_the_upload_is_reported(tmp_path: Path, content: tuple[Path, bytes]) -> None:
    path, _ = content
    fake = FakeTus()
    fake.on_patch = lambda: os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    store = ResumeStore(tmp_path / "cache")
    job = FileUpload(
        str(path),
        UploadOptions(endpoint=ENDPOINT),
        store=store,
        reporter=JsonLinesReporter(io.StringIO()),
        transport_factory=lambda: fake,
        clock=FakeClock(),
        cancel=threading.Event(),
    )
    with pytest.raises(ClientError, match="changed while it was being uploaded"):
        job.run()
    assert store.keys() == []
