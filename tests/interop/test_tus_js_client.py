"""Interop with tus-js-client (its Node build, run by ``node``) against ``tusd-py serve``.

Each test runs ``tests/interop/js/upload.mjs`` in a subprocess with a
deadline; the script prints one JSON line describing what the client did.
Covers: chunked upload (``chunkSize``), abort then resume through
``FileUrlStorage`` (``findPreviousUploads`` + ``resumeFromPreviousUpload``),
``parallelUploads: 3`` (partial uploads joined by concatenation), and an
upload routed to S3. The server runs with auth on; every request carries a
bearer token from ``tusd-py token``. Bytes
are checked by sha256 via GET. The npm packages come from ``npm ci`` (root
``package.json`` / ``package-lock.json``; ``scripts/test`` runs it).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest

from tests.integration import s3_support as s3t
from tests.interop.live import (
    REPO_ROOT,
    LiveServer,
    head,
    mint_token,
    run_node_script,
    server_errors,
    sha256_via_get,
    write_random_file,
)

pytestmark = pytest.mark.interop

MIB = 1 << 20
SIZE = 4 * MIB + 4321
CHUNK = 512 * 1024
SCRIPT = REPO_ROOT / "tests" / "interop" / "js" / "upload.mjs"
DEADLINE = 90.0


def run_js(mode: str, live_server: LiveServer, headers: dict[str, str], **options: Any) -> dict[str, Any]:
    """Run ``upload.mjs`` in ``mode``; returns its JSON result (fails the test on error)."""
    config = {"mode": mode, "endpoint": live_server.endpoint, "headers": headers, **options}
    return run_node_script(SCRIPT, config, DEADLINE)


def test_chunked_upload(live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "chunked.bin"
    digest = write_random_file(path, SIZE, seed=11)

    result = run_js("chunked", live_server, client_headers, file=str(path), chunkSize=CHUNK)

    assert result["patchOffsets"] == [i * CHUNK for i in range(math.ceil(SIZE / CHUNK))]
    info = head(result["url"], client_headers)
    assert info["Upload-Offset"] == str(SIZE) and info["Upload-Length"] == str(SIZE)
    assert sha256_via_get(result["url"], client_headers) == digest


def test_abort_then_resume_through_file_url_storage(
    live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "resume.bin"
    digest = write_random_file(path, SIZE, seed=12)
    log_start = live_server.log_size()

    result = run_js(
        "resume",
        live_server,
        client_headers,
        file=str(path),
        chunkSize=CHUNK,
        storePath=str(tmp_path / "tus-url-storage.json"),
        abortAfter=3 * CHUNK // 2,
    )

    assert result["url"] == result["firstUrl"], "the second Upload did not reuse the stored URL"
    methods = result["methods"]
    assert methods[0] == "HEAD" and "POST" not in methods, methods
    assert 0 < result["resumeOffset"] < SIZE, "the resumed upload restarted from 0"
    # The server created exactly one upload for this file.
    creations = [r for r in live_server.log_records(log_start) if r.get("method") == "POST"]
    assert len(creations) == 1
    assert sha256_via_get(result["url"], client_headers) == digest


def test_parallel_uploads_are_concatenated(
    live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "parallel.bin"
    digest = write_random_file(path, SIZE, seed=13)

    result = run_js("parallel", live_server, client_headers, file=str(path), chunkSize=CHUNK)

    parts = result["partUrls"]
    assert isinstance(parts, list) and len(parts) == 3
    for part in parts:
        assert head(part, client_headers)["Upload-Concat"] == "partial"
    final = head(result["url"], client_headers)
    assert final["Upload-Concat"].startswith("final;")
    assert final["Upload-Length"] == str(SIZE) and final["Upload-Offset"] == str(SIZE)
    assert sha256_via_get(result["url"], client_headers) == digest


def test_upload_routed_to_s3(
    live_s3_server: LiveServer, s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    """A 14 MiB file (above the 12 MiB threshold) sent in 3 MiB chunks ends as
    one S3 object, byte-identical, with no multipart upload left open."""
    headers = {"Authorization": f"Bearer {mint_token(live_s3_server, 'interop-s3', 'premium')}"}
    path = tmp_path / "big.bin"
    size = 14 * MIB + 333
    digest = write_random_file(path, size, seed=17)

    result = run_js("chunked", live_s3_server, headers, file=str(path), chunkSize=3 * MIB)

    assert len(result["patchOffsets"]) == math.ceil(size / (3 * MIB))
    info = head(result["url"], headers)
    assert info["Upload-Offset"] == str(size)
    upload_id = result["url"].rstrip("/").rsplit("/", 1)[-1]
    stored = s3t.object_bytes(s3_endpoint, s3_bucket, upload_id)
    assert hashlib.sha256(stored).hexdigest() == digest
    assert s3t.multipart_uploads(s3_endpoint, s3_bucket) == []
    assert server_errors(live_s3_server.log_records()) == []
