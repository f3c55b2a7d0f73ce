"""CORS (TUS-CHECKLIST line 80; SPEC §2: origin allow-list, full expose list)."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPResponse

from tests.tusclient import Tus

ORIGIN = "https://app.example"
REQUIRED_METHODS = {"POST", "HEAD", "PATCH", "OPTIONS", "GET", "DELETE"}
REQUIRED_ALLOW = {
    "Authorization",
    "Content-Type",
    "Upload-Length",
    "Upload-Offset",
    "Tus-Resumable",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Checksum",
    "X-HTTP-Method-Override",
    "X-Request-ID",
}
REQUIRED_EXPOSE = {
    "Upload-Offset",
    "Location",
    "Upload-Length",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Max-Size",
    "Tus-Extension",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Expires",
    "Upload-Checksum",
}


def listed(res: HTTPResponse, name: str) -> set[str]:
    return {v.strip() for v in res.headers.get(name, "").split(",") if v.strip()}


def preflight_headers(origin: str = ORIGIN) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "PATCH",
        "Access-Control-Request-Headers": "tus-resumable, upload-offset, content-type",
    }


def assert_exposes(res: HTTPResponse) -> None:
    assert res.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert REQUIRED_EXPOSE <= listed(res, "Access-Control-Expose-Headers")
    assert "Origin" in listed(res, "Vary")


@pytest.mark.parametrize("target", ["collection", "upload"])
@pytest.mark.gen_test
async def test_line80_preflight_allows_tus(tus: Tus, target: str) -> None:
    url = tus.collection if target == "collection" else await tus.create_url(1)
    res = await tus.request("OPTIONS", url, preflight_headers(), tus=False)
    assert res.code in (200, 204)
    assert res.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert REQUIRED_METHODS <= listed(res, "Access-Control-Allow-Methods")
    assert REQUIRED_ALLOW <= listed(res, "Access-Control-Allow-Headers")
    assert int(res.headers["Access-Control-Max-Age"]) > 0


@pytest.mark.gen_test
async def test_line80_actual_responses_expose_headers(tus: Tus) -> None:
    origin = {"Origin": ORIGIN}
    res = await tus.create(4, headers=origin)
    assert_exposes(res)
    url = res.headers["Location"]
    assert_exposes(await tus.patch(url, 0, b"ab", headers=origin))
    assert_exposes(await tus.head(url, headers=origin))
    assert_exposes(await tus.request("OPTIONS", tus.collection, origin, tus=False))
    await tus.patch(url, 2, b"cd")
    assert_exposes(await tus.get(url, headers=origin))
    assert_exposes(await tus.delete(url, headers=origin))


@pytest.mark.gen_test
async def test_line80_errors_are_readable_cross_origin(tus: Tus) -> None:
    """Browsers hide a response without CORS headers, errors included."""
    origin = {"Origin": ORIGIN}
    res = await tus.request("POST", tus.collection, origin)  # no Upload-Length: 400
    assert res.code == 400
    assert_exposes(res)
    url = await tus.create_url(4)
    res = await tus.patch(url, 3, b"x", headers=origin)  # 409
    assert res.code == 409
    assert_exposes(res)
    res = await tus.request("HEAD", url, origin, tus=False)  # 412
    assert res.code == 412
    assert_exposes(res)


@pytest.mark.gen_test
async def test_no_cors_headers_without_origin(tus: Tus) -> None:
    res = await tus.create(1)
    assert "Access-Control-Allow-Origin" not in res.headers
    assert "Access-Control-Expose-Headers" not in res.headers


class TestAllowList:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.cors_origins": [ORIGIN, "http://localhost:3000"]}

    @pytest.mark.gen_test
    async def test_allowed_origin_gets_cors(self, tus: Tus) -> None:
        res = await tus.request("OPTIONS", tus.collection, preflight_headers(), tus=False)
        assert res.headers["Access-Control-Allow-Origin"] == ORIGIN
        res = await tus.create(1, headers={"Origin": "http://localhost:3000"})
        assert res.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"

    @pytest.mark.parametrize("origin", ["https://evil.example", "https://app.example.evil", "null"])
    @pytest.mark.gen_test
    async def test_other_origins_get_nothing(self, tus: Tus, origin: str) -> None:
        res = await tus.request("OPTIONS", tus.collection, preflight_headers(origin), tus=False)
        assert "Access-Control-Allow-Origin" not in res.headers
        assert "Access-Control-Allow-Methods" not in res.headers
        res = await tus.create(1, headers={"Origin": origin})
        assert res.code == 201  # CORS is enforced by browsers, not by refusing
        assert "Access-Control-Allow-Origin" not in res.headers
        assert "Access-Control-Expose-Headers" not in res.headers
