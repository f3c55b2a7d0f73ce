"""``Location`` from trusted proxy headers only (TUS-CHECKLIST line 37)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.conftest import upload_id_of
from tests.tusclient import Tus

PROXY_HEADERS = {
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "Forwarded": "for=1.2.3.4;proto=https;host=evil.example",
}


async def location(tus: Tus, headers: dict[str, str]) -> str:
    res = await tus.create(1, headers=headers)
    assert res.code == 201
    return str(res.headers["Location"])


@pytest.mark.gen_test
async def test_line37_proxy_headers_ignored_by_default(tus: Tus, base_url: str) -> None:
    for name, value in PROXY_HEADERS.items():
        url = await location(tus, {name: value})
        assert url.startswith(base_url + "/files/"), (name, url)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("uploads.example", "http://uploads.example/files/"),
        ("uploads.example:80", "http://uploads.example/files/"),  # default port stripped
        ("uploads.example:8443", "http://uploads.example:8443/files/"),
    ],
)
@pytest.mark.gen_test
async def test_location_follows_the_host_header(tus: Tus, host: str, expected: str) -> None:
    url = await location(tus, {"Host": host})
    assert url.startswith(expected)
    assert len(upload_id_of(url)) == 32


class TestTrustedProxy:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.trust_proxy": True}

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"X-Forwarded-Host": "up.example", "X-Forwarded-Proto": "https"}, "https://up.example/files/"),
            (
                {"X-Forwarded-Host": "up.example:443", "X-Forwarded-Proto": "https"},
                "https://up.example/files/",
            ),
            ({"X-Forwarded-Host": "up.example:8080"}, "http://up.example:8080/files/"),
            ({"X-Forwarded-Host": "a.example, b.example"}, "http://a.example/files/"),  # first hop
            ({"X-Forwarded-Proto": "javascript", "Host": "h.example"}, "http://h.example/files/"),
            ({"Forwarded": 'for=1.2.3.4;proto=https;host="fw.example:443"'}, "https://fw.example/files/"),
            (
                {"Forwarded": "proto=https;host=one.example, proto=http;host=two.example"},
                "https://one.example/",
            ),
            (
                {"Forwarded": "proto=https;host=fw.example", "X-Forwarded-Host": "xf.example"},
                "https://fw.example/files/",  # the standard header wins
            ),
        ],
    )
    @pytest.mark.gen_test
    async def test_line37_trusted_proxy_headers_build_location(
        self, tus: Tus, headers: dict[str, str], expected: str
    ) -> None:
        url = await location(tus, headers)
        assert url.startswith(expected), url

    @pytest.mark.gen_test
    async def test_location_is_usable(self, tus: Tus, base_url: str) -> None:
        url = await location(tus, {"X-Forwarded-Host": "up.example", "X-Forwarded-Proto": "https"})
        res = await tus.head(base_url + "/files/" + upload_id_of(url))
        assert res.code == 200
