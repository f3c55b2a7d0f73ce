"""End-to-end smoke: create, PATCH in two pieces, HEAD, GET."""

from __future__ import annotations

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.tusclient import Tus


@pytest.mark.gen_test
async def test_upload_round_trip(http_client: AsyncHTTPClient, base_url: str) -> None:
    tus = Tus(http_client, base_url)
    url = await tus.create_url(11)
    res = await tus.patch(url, 0, b"hello ")
    assert res.code == 204 and res.headers["Upload-Offset"] == "6"
    res = await tus.patch(url, 6, b"world")
    assert res.code == 204 and res.headers["Upload-Offset"] == "11"
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "11" and head.headers["Upload-Length"] == "11"
    got = await tus.get(url)
    assert got.code == 200 and got.body == b"hello world"
