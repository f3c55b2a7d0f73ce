"""tus-js-client in its IETF draft modes against ``tusd-py serve`` (issue 17).

``protocol: 'ietf-draft-03'`` speaks interop 5 and ``'ietf-draft-05'``
interop 6 (``Upload-Draft-Interop-Version``, no ``Tus-Resumable``). Each mode
uploads in chunks and aborts then resumes through ``FileUrlStorage``, with and
without ``uploadDataDuringCreation``; the bytes are read back with a tus GET
(sha256) and the upload is inspected with a tus HEAD: one upload, two protocols.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
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

KIB = 1 << 10
MIB = 1 << 20
SIZE = 1024 * KIB + 4321
CHUNK = 256 * KIB
SCRIPT = REPO_ROOT / "tests" / "interop" / "js" / "rufh.mjs"
DEADLINE = 60.0
PROTOCOLS = {"ietf-draft-03": "5", "ietf-draft-05": "6"}


def run_rufh_js(mode: str, server: LiveServer, headers: dict[str, str], **options: Any) -> dict[str, Any]:
    """Run ``rufh.mjs`` in ``mode``; returns its JSON result (fails the test on error)."""
    config = {"mode": mode, "endpoint": server.endpoint, "headers": headers, **options}
    return run_node_script(SCRIPT, config, DEADLINE)


CASES = [(p, during) for p in PROTOCOLS for during in (False, True)]
IDS = [f"{p}-{'with' if during else 'without'}-data-during-creation" for p, during in CASES]


@pytest.mark.parametrize(("protocol", "during"), CASES, ids=IDS)
def test_chunked_draft_upload(
    live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path, protocol: str, during: bool
) -> None:
    path = tmp_path / "draft.bin"
    digest = write_random_file(path, SIZE, seed=31)

    result = run_rufh_js(
        "chunked",
        live_server,
        client_headers,
        protocol=protocol,
        uploadDataDuringCreation=during,
        file=str(path),
        chunkSize=CHUNK,
    )

    assert set(result["interop"]) == {PROTOCOLS[protocol]}
    chunks = math.ceil(SIZE / CHUNK)
    assert result["methods"] == ["POST"] + ["PATCH"] * (chunks - 1 if during else chunks)
    info = head(result["url"], client_headers)
    assert info["Upload-Offset"] == str(SIZE) and info["Upload-Length"] == str(SIZE)
    assert "filename ZHJhZnQuYmlu" in info["Upload-Metadata"]  # draft.bin
    assert sha256_via_get(result["url"], client_headers) == digest


@pytest.mark.parametrize(("protocol", "during"), CASES, ids=IDS)
def test_draft_abort_then_resume(
    live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path, protocol: str, during: bool
) -> None:
    path = tmp_path / "resume.bin"
    digest = write_random_file(path, SIZE, seed=32)
    log_start = live_server.log_size()

    result = run_rufh_js(
        "resume",
        live_server,
        client_headers,
        protocol=protocol,
        uploadDataDuringCreation=during,
        file=str(path),
        chunkSize=CHUNK,
        storePath=str(tmp_path / "urls.json"),
        abortAfter=3 * CHUNK // 2,
    )

    assert result["url"] == result["firstUrl"], "the second Upload did not reuse the stored URL"
    assert result["methods"][0] == "HEAD" and "POST" not in result["methods"], result["methods"]
    assert set(result["interop"]) == {PROTOCOLS[protocol]}
    assert 0 < result["resumeOffset"] < SIZE, "the resumed upload restarted from 0"
    creations = [r for r in live_server.log_records(log_start) if r.get("method") == "POST"]
    assert len(creations) == 1
    assert sha256_via_get(result["url"], client_headers) == digest


def _start_node(script: Path, config: dict[str, Any]) -> subprocess.Popen[str]:
    node = shutil.which("node")
    assert node is not None, "node is not installed (Node 20 is a test dependency)"
    return subprocess.Popen(
        [node, str(script), json.dumps({"deadlineMs": int(DEADLINE * 1000), **config})],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=DEADLINE + 10)
    assert proc.returncode == 0, f"node failed ({proc.returncode}):\n{err}"
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_tus_and_draft_clients_at_once(
    live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path
) -> None:
    """A tus client and a draft client upload to the same server at the same time."""
    tus_file, draft_file = tmp_path / "tus.bin", tmp_path / "draft.bin"
    tus_digest = write_random_file(tus_file, SIZE, seed=41)
    draft_digest = write_random_file(draft_file, SIZE + 77, seed=42)
    common = {"endpoint": live_server.endpoint, "headers": client_headers, "chunkSize": CHUNK}
    tus_proc = _start_node(
        REPO_ROOT / "tests" / "interop" / "js" / "upload.mjs",
        {"mode": "chunked", "file": str(tus_file), **common},
    )
    draft_proc = _start_node(
        SCRIPT,
        {
            "mode": "chunked",
            "protocol": "ietf-draft-05",
            "uploadDataDuringCreation": True,
            "file": str(draft_file),
            **common,
        },
    )
    tus_result, draft_result = _result(tus_proc), _result(draft_proc)

    assert tus_result["url"] != draft_result["url"]
    assert sha256_via_get(tus_result["url"], client_headers) == tus_digest
    assert sha256_via_get(draft_result["url"], client_headers) == draft_digest
    assert head(draft_result["url"], client_headers)["Upload-Length"] == str(SIZE + 77)


def test_draft_upload_routed_to_s3(
    live_s3_server: LiveServer, s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    """A 13 MiB draft upload (above the 12 MiB threshold) ends as one S3 object,
    byte-identical, with no multipart upload left open."""
    headers = {"Authorization": f"Bearer {mint_token(live_s3_server, 'interop-s3-draft', 'premium')}"}
    path = tmp_path / "big.bin"
    size = 13 * MIB + 555
    digest = write_random_file(path, size, seed=43)

    result = run_rufh_js(
        "chunked",
        live_s3_server,
        headers,
        protocol="ietf-draft-05",
        uploadDataDuringCreation=True,
        file=str(path),
        chunkSize=5 * MIB,
    )

    assert result["methods"] == ["POST", "PATCH", "PATCH"]
    upload_id = result["url"].rstrip("/").rsplit("/", 1)[-1]
    stored = s3t.object_bytes(s3_endpoint, s3_bucket, upload_id)
    assert hashlib.sha256(stored).hexdigest() == digest
    assert s3t.multipart_uploads(s3_endpoint, s3_bucket) == []
    assert server_errors(live_s3_server.log_records()) == []
