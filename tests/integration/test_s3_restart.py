"""A ``tusd-py serve`` process relaying to S3 is killed mid-upload (SIGKILL,
in the middle of a PATCH body) and restarted on the same data dir: HEAD shows
what is durably held, the client resumes, the object is byte-identical."""

from __future__ import annotations

import contextlib
import signal
import socket
import sqlite3
import time
from pathlib import Path

import requests

from tests.integration import s3_support as s3t

MIB = s3t.MIB
TUS = {"Tus-Resumable": "1.0.0"}


def _patch(base: str, url: str, offset: int, body: bytes) -> requests.Response:
    headers = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
    return requests.patch(base + url, data=body, headers=headers, timeout=60)


def _held_on_server(data_dir: Path, upload_id: str) -> int:
    """Bytes in recorded S3 parts plus the spool, read from another process."""
    with contextlib.closing(sqlite3.connect(data_dir / "state.db", timeout=5)) as db:
        (parts,) = db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM parts WHERE upload_id = ?", (upload_id,)
        ).fetchone()
    spool = data_dir / "s3spool" / upload_id
    files = sum(f.stat().st_size for f in spool.iterdir()) if spool.is_dir() else 0
    return int(parts) + files


def _head_offset(base: str, url: str) -> int:
    res = requests.head(base + url, headers=TUS, timeout=30)
    assert res.status_code == 200, res.status_code
    return int(res.headers["Upload-Offset"])


def test_server_killed_mid_upload_resumes_after_restart(tmp_path: Path, s3_endpoint: str) -> None:
    bucket = s3t.new_bucket(s3_endpoint)
    settings = s3t.overrides(s3_endpoint, bucket)
    data = s3t.pattern(29 * MIB + 17, seed=31)
    data_dir = tmp_path / "data"
    with s3t.server_process(data_dir, settings) as (proc, base):
        res = requests.post(base + "/files/", headers={**TUS, "Upload-Length": str(len(data))}, timeout=30)
        assert res.status_code == 201
        url = res.headers["Location"].replace(base, "")
        res = _patch(base, url, 0, data[: 13 * MIB])
        assert res.status_code == 204
        # Start a PATCH for the rest, send 5 MiB of it, then kill the server.
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            head = (
                f"PATCH {url} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n"
                f"Upload-Offset: {13 * MIB}\r\nContent-Type: application/offset+octet-stream\r\n"
                f"Content-Length: {len(data) - 13 * MIB}\r\n\r\n"
            )
            sock.sendall(head.encode() + data[13 * MIB : 18 * MIB])
            upload_id = url.rsplit("/", 1)[-1]
            deadline = time.monotonic() + 30
            while _held_on_server(data_dir, upload_id) != 18 * MIB and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _held_on_server(data_dir, upload_id) == 18 * MIB
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    with s3t.server_process(data_dir, settings) as (_, base):
        offset = _head_offset(base, url)
        assert offset == 18 * MIB  # every byte that reached the server before the kill
        for _ in range(10):
            res = _patch(base, url, offset, data[offset : offset + 7 * MIB])
            assert res.status_code == 204, res.text
            offset = int(res.headers["Upload-Offset"])
            if offset == len(data):
                break
        assert offset == len(data)
        assert s3t.object_bytes(s3_endpoint, bucket, upload_id) == data
        assert s3t.multipart_uploads(s3_endpoint, bucket) == []
