"""A full disk answers 507, keeps the offset consistent, and the upload resumes once space returns.

The server's data dir (upload files, S3 spool and the SQLite state) lives on a tmpfs the test
mounts with ``size=``; a filler file leaves a few MiB free. A PATCH that does not fit gets 507
``ERR_INSUFFICIENT_STORAGE``; HEAD then reports an offset no greater than what was sent; after the
filler is removed, HEAD + PATCH from that offset completes the upload with identical bytes —
for a local-disk upload and for an S3-routed one (spool on the full disk).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import s3_support, tushttp
from tests.integration.procs import ServerProcess, server_errors

MIB = 1 << 20

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mount") is None, reason="mounting a tmpfs needs root"
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(mount_point)], check=True, timeout=30
    )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=30)


def fill_leaving(mount_point: Path, room: int) -> Path:
    """Write a filler file so that about ``room`` bytes stay free."""
    stats = os.statvfs(mount_point)
    free = stats.f_bavail * stats.f_frsize
    filler = mount_point / "filler"
    with open(filler, "wb") as out:
        remaining = max(0, free - room)
        block = b"\0" * MIB
        while remaining > 0:
            out.write(block[: min(MIB, remaining)])
            remaining -= min(MIB, remaining)
    return filler


def walk_full_disk(server: ServerProcess, mount_point: Path, data: bytes, room: int) -> str:
    """Create, PATCH into a full disk (507), free space, resume; returns the upload URL."""
    url = tushttp.create(server.files_url, len(data))
    filler = fill_leaving(mount_point, room)
    refused = tushttp.patch(url, 0, data)
    assert refused.status == 507, (refused.status, refused.body[:300])
    assert json.loads(refused.body)["error"]["code"] == "ERR_INSUFFICIENT_STORAGE"
    offset = tushttp.offset_of(url)
    assert 0 <= offset < len(data)
    # Still full: a retry is refused the same way and loses nothing.
    again = tushttp.patch(url, offset, data[offset:])
    assert again.status in (204, 507), (again.status, again.body[:300])
    assert tushttp.offset_of(url) >= offset
    filler.unlink()
    offset = tushttp.offset_of(url)
    if offset < len(data):
        done = tushttp.patch(url, offset, data[offset:])
        assert done.status == 204, (done.status, done.body[:300])
    assert tushttp.offset_of(url) == len(data)
    return url


def test_local_upload_on_a_full_disk(small_disk: Path, tmp_path: Path) -> None:
    server = ServerProcess(small_disk / "data", tmp_path / "server.log", {}).start()
    try:
        data = s3_support.pattern(8 * MIB, seed=7)
        url = walk_full_disk(server, small_disk, data, room=3 * MIB)
        got = tushttp.get(url)
        assert got.status == 200
        assert hashlib.sha256(got.body).hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        server.stop()
    assert not server_errors(server.log_path)


def test_s3_spool_on_a_full_disk(small_disk: Path, tmp_path: Path, s3_endpoint: str, bucket: str) -> None:
    settings = s3_support.overrides(s3_endpoint, bucket, download="proxy")
    server = ServerProcess(small_disk / "data", tmp_path / "server.log", s3_support.env_for(settings)).start()
    try:
        data = s3_support.pattern(s3_support.THRESHOLD + 4 * MIB, seed=8)
        url = walk_full_disk(server, small_disk, data, room=3 * MIB)
        got = tushttp.get(url)
        assert got.status == 200
        assert hashlib.sha256(got.body).hexdigest() == hashlib.sha256(data).hexdigest()
        assert s3_support.multipart_uploads(s3_endpoint, bucket) == []
    finally:
        server.stop()
    assert not server_errors(server.log_path)
