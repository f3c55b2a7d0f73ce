"""OPTIONS discovery (TUS-CHECKLIST §1.1 lines 1–5 and the "listed" lines of
every extension: 29, 39, 46, 52, 56, 61, 62, 67, 78)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tusclient import Tus

EXPECTED_EXTENSIONS = [
    "creation",  # line 29
    "creation-with-upload",  # line 46
    "creation-defer-length",  # line 39
    "expiration",  # line 52
    "checksum",  # line 56
    "termination",  # line 62
    "concatenation",  # line 67
    "concatenation-unfinished",  # line 78
]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # line 1: no Tus-Resumable
        {"Tus-Resumable": "9.9.9"},  # line 2: ignored on OPTIONS
        {"Tus-Resumable": "1.0.0"},
    ],
    ids=["line1-no-version", "line2-unsupported-version-ignored", "current-version"],
)
@pytest.mark.gen_test
async def test_line1_2_options_answers_with_tus_version(tus: Tus, headers: dict[str, str]) -> None:
    res = await tus.request("OPTIONS", tus.collection, headers, tus=False)
    assert res.code in (200, 204)
    assert res.headers["Tus-Version"] == "1.0.0"
    assert res.body == b""


@pytest.mark.gen_test
async def test_options_on_an_upload_url_also_discovers(tus: Tus) -> None:
    url = await tus.create_url(3)
    res = await tus.request("OPTIONS", url, {"Tus-Resumable": "0.0.1"}, tus=False)
    assert res.code == 204
    assert res.headers["Tus-Version"] == "1.0.0"


@pytest.mark.gen_test
async def test_line3_extensions_listed_in_order(tus: Tus) -> None:
    """Every extension implemented on local disk is advertised (29, 39, 46, 52,
    56, 62, 67, 78); creation-with-upload only together with creation (46)."""
    res = await tus.request("OPTIONS", tus.collection, tus=False)
    extensions = res.headers["Tus-Extension"].split(",")
    assert extensions == EXPECTED_EXTENSIONS
    assert extensions.index("creation") < extensions.index("creation-with-upload")


@pytest.mark.gen_test
async def test_line61_checksum_trailer_not_advertised(tus: Tus) -> None:
    """Tornado does not expose chunked trailers, so ``checksum-trailer`` is not offered."""
    res = await tus.request("OPTIONS", tus.collection, tus=False)
    assert "checksum-trailer" not in res.headers["Tus-Extension"].split(",")


@pytest.mark.gen_test
async def test_line5_56_checksum_algorithms_lowercase_with_sha1(tus: Tus) -> None:
    res = await tus.request("OPTIONS", tus.collection, tus=False)
    algorithms = res.headers["Tus-Checksum-Algorithm"].split(",")
    assert algorithms == ["sha1", "md5", "sha256", "sha512", "crc32"]
    assert all(a == a.lower() and a.isascii() for a in algorithms)


@pytest.mark.gen_test
async def test_line4_no_max_size_header_without_a_limit(tus: Tus) -> None:
    res = await tus.request("OPTIONS", tus.collection, tus=False)
    assert "Tus-Max-Size" not in res.headers


class TestWithMaxSize:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_size": 1000}

    @pytest.mark.gen_test
    async def test_line4_max_size_advertised(self, tus: Tus) -> None:
        res = await tus.request("OPTIONS", tus.collection, tus=False)
        assert res.headers["Tus-Max-Size"] == "1000"


class TestWithoutOptionalCapabilities:
    """Line 3: with no extension to offer the header is omitted, never empty."""

    @pytest.mark.gen_test
    async def test_line3_tus_extension_omitted_when_empty(self, tus: Tus, ctx: Any) -> None:
        ctx.composer.tus_extensions = lambda: []
        res = await tus.request("OPTIONS", tus.collection, tus=False)
        assert "Tus-Extension" not in res.headers
        assert "Tus-Checksum-Algorithm" not in res.headers
