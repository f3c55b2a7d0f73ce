"""Fuzzing a live server: schemathesis against ``/openapi.json``, hypothesis on raw headers.

One ``tusd-py serve`` subprocess (auth on, a premium token) takes generated requests:
every operation of the OpenAPI document with schemathesis (bounded examples), and
PATCH/POST/HEAD requests whose tus headers (Upload-Offset, Upload-Length,
Upload-Metadata, Upload-Concat, Upload-Checksum, X-HTTP-Method-Override,
Authorization, Range) are arbitrary. Never a 5xx; every 4xx carries the JSON
error document; every response conforms to the document.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from tests.e2e.helpers import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("fuzz")
    data = root / "data"
    data.mkdir()
    server = ServerProcess(data, root / "server.log", auth=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def token(fuzz_server: ServerProcess) -> str:
    return fuzz_server.token("fuzzer", tier="premium")


# Upload bodies are raw bytes, as application/octet-stream.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")

VALIDATING_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


def test_openapi_operations_conform(fuzz_server: ServerProcess, token: str) -> None:
    """Every operation of /openapi.json, 25 generated cases each (schemathesis strategies)."""
    origin = fuzz_server.url.split("/files/", 1)[0]
    schema = schemathesis.openapi.from_url(f"{origin}/openapi.json")
    auth = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, [op.label for op in operations]
    for operation in operations:

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def conforms(case: Any) -> None:
            case.call_and_validate(base_url=origin, headers=auth, checks=VALIDATING_CHECKS)

        conforms()


latin1 = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\r\n"),
    max_size=120,
)
tus_header = st.sampled_from(
    [
        "Upload-Offset",
        "Upload-Length",
        "Upload-Defer-Length",
        "Upload-Metadata",
        "Upload-Concat",
        "Upload-Checksum",
        "X-HTTP-Method-Override",
        "Authorization",
        "Range",
        "Idempotency-Key",
    ]
)


def _send(
    server: ServerProcess, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value.encode("latin-1"))
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def upload_path(fuzz_server: ServerProcess, token: str) -> str:
    status, _ = 0, b""
    parts = urlsplit(fuzz_server.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    conn.request(
        "POST",
        parts.path,
        headers={"Tus-Resumable": "1.0.0", "Upload-Length": "100", "Authorization": f"Bearer {token}"},
    )
    response = conn.getresponse()
    response.read()
    status = response.status
    location = response.getheader("Location") or ""
    conn.close()
    assert status == 201
    return urlsplit(location).path


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["POST", "PATCH", "HEAD", "GET", "DELETE", "OPTIONS"]),
    target=st.sampled_from(["collection", "upload"]),
    fields=st.dictionaries(tus_header, latin1, max_size=4),
    body=st.binary(max_size=64),
)
def test_arbitrary_tus_headers_never_5xx(
    fuzz_server: ServerProcess,
    token: str,
    upload_path: str,
    method: str,
    target: str,
    fields: dict[str, str],
    body: bytes,
) -> None:
    headers = {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"}
    if method == "PATCH":
        headers["Content-Type"] = "application/offset+octet-stream"
    if method == "DELETE" and target == "upload":
        method = "HEAD"  # keep the shared upload for the other examples
    headers.update(fields)
    path = urlsplit(fuzz_server.url).path if target == "collection" else upload_path
    status, payload = _send(fuzz_server, method, path, headers, body if method in ("POST", "PATCH") else b"")
    assert status < 500, (status, headers, payload[:300])
    if status >= 400 and method != "HEAD" and payload:
        document = json.loads(payload)
        assert document["error"]["code"].startswith("ERR_") and document["error"]["message"]


def test_server_logged_no_5xx_and_no_orphaned_task(fuzz_server: ServerProcess) -> None:
    """Runs after the fuzzers above (file order): their whole traffic, read back from the log."""
    records = fuzz_server.log_records()
    assert [r for r in records if r.get("status")], "the server logged no access lines"
    assert not [r for r in records if int(r.get("status") or 0) >= 500]
    assert "Task exception was never retrieved" not in fuzz_server.log_path.read_text()
