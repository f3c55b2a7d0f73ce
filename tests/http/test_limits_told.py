"""Limits told (issue 14.6, issue 12.9): ``Tus-Max-Size`` is the caller's
maximum (tier, capped by the server's) when a valid credential is sent, the
server's otherwise; sha512 is advertised; an ``Upload-Length`` or
``Upload-Offset`` beyond any limit says which limit, with the right status.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.fake_auth import as_user, ctx  # noqa: F401  (the ctx fixture with test auth)
from tests.tusclient import Tus

GIB = 1 << 30
SERVER_MAX = 5 * GIB
BASIC_MAX = 1 * GIB
HUGE = "1" + "0" * 30


async def max_size(tus: Tus, headers: dict[str, str], url: str | None = None) -> str | None:
    res = await tus.request("OPTIONS", url or tus.collection, headers, tus=False)
    assert res.code == 204
    return res.headers.get("Tus-Max-Size")


class TestWithServerMax:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_size": SERVER_MAX, "throttle.basic_max_size": BASIC_MAX}

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({}, SERVER_MAX),
            (as_user("alice"), BASIC_MAX),  # basic tier: its own, smaller maximum
            (as_user("root"), SERVER_MAX),  # admin tier: no tier maximum, the server's applies
            (as_user("!bad"), SERVER_MAX),  # a bad credential is not an error on OPTIONS
        ],
        ids=["anonymous", "basic", "admin", "bad-token"],
    )
    @pytest.mark.gen_test
    async def test_tus_max_size_is_the_callers(
        self, tus: Tus, headers: dict[str, str], expected: int
    ) -> None:
        assert await max_size(tus, headers) == str(expected)

    @pytest.mark.gen_test
    async def test_on_an_upload_url_too(self, tus: Tus) -> None:
        url = await tus.create_url(3, headers=as_user("alice"))
        assert await max_size(tus, as_user("alice"), url) == str(BASIC_MAX)

    @pytest.mark.gen_test
    async def test_the_told_maximum_is_the_one_enforced(self, tus: Tus) -> None:
        told = int(await max_size(tus, as_user("alice")) or 0)
        assert (await tus.create(told, headers=as_user("alice"))).code == 201
        res = await tus.create(told + 1, headers=as_user("alice"))
        assert res.code == 413
        assert str(told) in json.loads(res.body)["error"]["message"]

    @pytest.mark.gen_test
    async def test_huge_upload_length_is_413_naming_the_maximum(self, tus: Tus) -> None:
        res = await tus.request("POST", tus.collection, {"Upload-Length": HUGE, **as_user("alice")})
        assert res.code == 413
        error = json.loads(res.body)["error"]
        assert error["code"] == "ERR_MAX_SIZE_EXCEEDED"
        assert str(BASIC_MAX) in error["message"]
        assert "non-negative" not in error["message"]


class TestWithoutServerMax:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_size": 0, "throttle.basic_max_size": BASIC_MAX}

    @pytest.mark.gen_test
    async def test_omitted_for_anonymous_callers(self, tus: Tus) -> None:
        assert await max_size(tus, {}) is None

    @pytest.mark.gen_test
    async def test_tier_maximum_told_to_its_members(self, tus: Tus) -> None:
        assert await max_size(tus, as_user("alice")) == str(BASIC_MAX)
        assert await max_size(tus, as_user("root")) is None

    @pytest.mark.gen_test
    async def test_huge_upload_length_is_400_naming_the_int64_maximum(self, tus: Tus) -> None:
        res = await tus.request("POST", tus.collection, {"Upload-Length": HUGE, **as_user("root")})
        assert res.code == 400
        error = json.loads(res.body)["error"]
        assert error["code"] == "ERR_INVALID_UPLOAD_LENGTH"
        assert "exceeds the maximum 9223372036854775807" in error["message"]
        assert "non-negative" not in error["message"]

    @pytest.mark.gen_test
    async def test_huge_upload_offset_is_400_naming_the_int64_maximum(self, tus: Tus) -> None:
        url = await tus.create_url(3, headers=as_user("root"))
        res = await tus.patch(url, 0, b"abc", headers={"Upload-Offset": HUGE, **as_user("root")})
        assert res.code == 400
        error = json.loads(res.body)["error"]
        assert error["code"] == "ERR_INVALID_OFFSET"
        assert "exceeds the maximum 9223372036854775807" in error["message"]

    @pytest.mark.gen_test
    async def test_not_a_number_still_says_so(self, tus: Tus) -> None:
        res = await tus.request("POST", tus.collection, {"Upload-Length": "-5", **as_user("root")})
        assert res.code == 400
        assert "must be a non-negative integer" in json.loads(res.body)["error"]["message"]


@pytest.mark.gen_test
async def test_sha512_is_advertised(tus: Tus) -> None:
    res = await tus.request("OPTIONS", tus.collection, tus=False)
    assert "sha512" in res.headers["Tus-Checksum-Algorithm"].split(",")
