"""RFC 9530 digests on draft requests, and OPTIONS discovery (issue 17).

``Content-Digest`` (sha-256/sha-512) is checked per request like a tus
checksum (a mismatching body is discarded, 400 problem); ``Repr-Digest`` when
the request carries the whole upload; ``Want-Repr-Digest`` is answered when
the upload completes with every byte digested. OPTIONS advertises
``Upload-Limit`` and ``Accept-Patch: application/partial-upload``.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import http_sf
import pytest

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.rufh_client import PARTIAL, exchange, path_of, version_headers
from tests.tusclient import Tus

V8 = version_headers(8)
DATA = b"digest me, all of me"


def sf_digest(name: str, data: bytes) -> str:
    algorithm = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}[name]
    return f"{name}=:{base64.b64encode(algorithm(data).digest()).decode()}:"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"server.max_size": 1 << 20}


@pytest.mark.parametrize("algorithm", ["sha-256", "sha-512"])
@pytest.mark.parametrize("field", ["Content-Digest", "Repr-Digest"])
@pytest.mark.gen_test(timeout=30)
async def test_whole_body_digest_verified_and_answered(
    connect: Connect, stored: Stored, algorithm: str, field: str
) -> None:
    good = await exchange(
        connect,
        "POST",
        "/files/",
        {
            **V8,
            "Upload-Complete": "?1",
            field: sf_digest(algorithm, DATA),
            "Want-Repr-Digest": f"{algorithm}=5",
        },
        DATA,
    )
    assert good.status == 201, good.final
    assert good.header("Repr-Digest") == sf_digest(algorithm, DATA)
    assert stored.content(upload_id_of(good.header("Location") or "")) == DATA

    bad = await exchange(
        connect,
        "POST",
        "/files/",
        {**V8, "Upload-Complete": "?1", field: sf_digest(algorithm, b"other")},
        DATA,
    )
    assert bad.status == 400
    assert bad.problem()["code"] == "ERR_CHECKSUM_MISMATCH"
    assert stored.content(upload_id_of(bad.header("Location") or "")) == b""


@pytest.mark.gen_test(timeout=30)
async def test_append_content_digest(connect: Connect, stored: Stored, tus: Tus) -> None:
    created = await exchange(
        connect, "POST", "/files/", {**V8, "Upload-Complete": "?0", "Upload-Length": "20"}
    )
    path = path_of(created.header("Location"))
    headers = {**V8, **PARTIAL, "Upload-Complete": "?0", "Upload-Offset": "0"}
    wrong = await exchange(
        connect, "PATCH", path, {**headers, "Content-Digest": sf_digest("sha-256", b"x")}, DATA[:10]
    )
    assert wrong.status == 400 and wrong.problem()["code"] == "ERR_CHECKSUM_MISMATCH"
    assert (await tus.head(path)).headers["Upload-Offset"] == "0"
    malformed = await exchange(
        connect, "PATCH", path, {**headers, "Content-Digest": "sha-256=abc"}, DATA[:10]
    )
    assert malformed.status == 400 and malformed.problem()["code"] == "ERR_INVALID_CHECKSUM"
    ok = await exchange(
        connect, "PATCH", path, {**headers, "Content-Digest": sf_digest("sha-256", DATA[:10])}, DATA[:10]
    )
    assert ok.status == 204 and ok.header("Upload-Offset") == "10"
    last = {
        **V8,
        **PARTIAL,
        "Upload-Complete": "?1",
        "Upload-Offset": "10",
        "Want-Repr-Digest": "sha-256=1",
        "Content-Digest": sf_digest("sha-256", DATA[10:]),
    }
    done = await exchange(connect, "PATCH", path, last, DATA[10:])
    assert done.status == 204 and done.header("Upload-Complete") == "?1"
    assert done.header("Repr-Digest") == sf_digest("sha-256", DATA)
    assert stored.content(upload_id_of(path)) == DATA


@pytest.mark.gen_test(timeout=30)
async def test_repr_digest_of_a_completing_append(connect: Connect) -> None:
    for claimed, status in ((b"not the upload", 400), (DATA, 204)):
        created = await exchange(
            connect,
            "POST",
            "/files/",
            {**V8, "Upload-Complete": "?0", "Content-Digest": sf_digest("sha-512", DATA[:4])},
            DATA[:4],
        )
        path = path_of(created.header("Location"))
        last = {
            **V8,
            **PARTIAL,
            "Upload-Complete": "?1",
            "Upload-Offset": "4",
            "Content-Digest": sf_digest("sha-512", DATA[4:]),
            "Repr-Digest": sf_digest("sha-512", claimed),
        }
        done = await exchange(connect, "PATCH", path, last, DATA[4:])
        assert done.status == status
        if status == 400:
            assert done.problem()["code"] == "ERR_CHECKSUM_MISMATCH"


@pytest.mark.parametrize("path", ["/files/", "/files/0123456789abcdef0123456789abcdef"])
@pytest.mark.gen_test(timeout=30)
async def test_options_advertise_upload_limit(connect: Connect, path: str) -> None:
    res = await exchange(connect, "OPTIONS", path, {})
    assert res.status == 204
    assert res.header("Accept-Patch") == "application/partial-upload"
    limit = http_sf.parse((res.header("Upload-Limit") or "").encode(), tltype="dictionary")
    assert isinstance(limit, dict)
    assert limit["max-size"][0] == 1 << 20
    assert res.header("Tus-Version") == "1.0.0"  # tus discovery unchanged


@pytest.mark.gen_test(timeout=30)
async def test_413_carries_upload_limit(connect: Connect) -> None:
    res = await exchange(
        connect, "POST", "/files/", {**V8, "Upload-Complete": "?0", "Upload-Length": str(2 << 20)}
    )
    assert res.status == 413
    assert res.problem()["code"] == "ERR_MAX_SIZE_EXCEEDED"
    assert "max-size=1048576" in (res.header("Upload-Limit") or "")
