"""Bad input (SPEC §12): malformed headers, path traversal in ids, huge
headers, wrong methods → a 4xx with a JSON error code, never a 500, never a
crash, nothing written. Header-specific tables live with their method
(test_post_creation, test_patch, test_checksum, test_concatenation,
test_download); this file covers what crosses methods.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from handlers.httpconn import HEADER_READ_CAP
from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.raw import request_head
from tests.tusclient import PATCH_TYPE, TUS, Tus

TRAVERSALS = [
    "..%2F..%2Fstate.db",
    "..%2Fuploads",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..",
    ".",
    "%00",
    "0123456789abcdef0123456789abcde%00",
    "0123456789abcdef0123456789abcdeF",
    "0123456789abcdef0123456789abcdef0",
    "%E2%98%83",
]


@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE", "GET"])
@pytest.mark.parametrize("segment", TRAVERSALS)
@pytest.mark.gen_test
async def test_path_traversal_in_ids_is_404_and_harmless(
    tus: Tus, stored: Stored, base_url: str, method: str, segment: str
) -> None:
    url = await tus.create_url(3)
    await tus.patch(url, 0, b"abc")
    state_db = (stored.data_dir / "state.db").stat().st_size
    headers = {**PATCH_TYPE, "Upload-Offset": "0"} if method == "PATCH" else {}
    res = await tus.request(
        method, f"{base_url}/files/{segment}", headers, b"xyz" if method == "PATCH" else None
    )
    assert res.code == 404, res.body
    if method != "HEAD":
        assert json.loads(res.body)["error"]["code"] in ("ERR_UPLOAD_NOT_FOUND", "ERR_NOT_FOUND")
    assert stored.files() == [upload_id_of(url)]
    assert stored.content(upload_id_of(url)) == b"abc"
    assert (stored.data_dir / "state.db").stat().st_size == state_db


@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE", "GET"])
@pytest.mark.gen_test
async def test_invalid_utf8_in_id_is_400(tus: Tus, stored: Stored, base_url: str, method: str) -> None:
    url = await tus.create_url(3)
    res = await tus.request(method, f"{base_url}/files/%ff%fe", {**PATCH_TYPE, "Upload-Offset": "0"})
    assert res.code == 400
    if method != "HEAD":
        assert json.loads(res.body)["error"]["code"] == "ERR_BAD_REQUEST"
    assert await stored.ids() == [upload_id_of(url)]


@pytest.mark.parametrize(
    "path",
    [
        "/files/a/b",
        "/files/../files/",
        "/web/static/nope.js",
        "/files2/",
        "/etc/passwd",
        "/files/" + "f" * 32 + "/x",
    ],
)
@pytest.mark.gen_test
async def test_unknown_routes_are_json_404(tus: Tus, base_url: str, path: str) -> None:
    res = await tus.request("GET", base_url + path, tus=False)
    assert res.code == 404
    assert json.loads(res.body)["error"]["code"] in ("ERR_NOT_FOUND", "ERR_UPLOAD_NOT_FOUND")
    assert res.headers["Tus-Resumable"] == "1.0.0"


@pytest.mark.parametrize(
    ("method", "target"),
    [
        ("PUT", "collection"),
        ("DELETE", "collection"),
        ("PATCH", "collection"),
        ("HEAD", "collection"),
        ("PUT", "upload"),
        ("TRACE", "upload"),
        ("FOO", "upload"),
        ("POST", "/healthz"),
    ],
)
@pytest.mark.gen_test
async def test_wrong_methods_are_405(
    tus: Tus, stored: Stored, base_url: str, method: str, target: str
) -> None:
    url = await tus.create_url(3)
    where = {"collection": tus.collection, "upload": url}.get(target, base_url + target)
    body = b"abc" if method in ("PUT", "PATCH", "POST") else None
    res = await tus.request(method, where, {**PATCH_TYPE, "Upload-Offset": "0", "Upload-Length": "3"}, body)
    assert res.code == 405, res.body
    if method != "HEAD":
        assert json.loads(res.body)["error"]["code"] == "ERR_METHOD_NOT_ALLOWED"
    assert res.headers["Tus-Resumable"] == "1.0.0"
    allowed = res.headers["Allow"].split(", ")
    assert allowed and method not in allowed
    assert await stored.ids() == [upload_id_of(url)]
    assert stored.content(upload_id_of(url)) == b""


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/index", "POST, OPTIONS"),
        ("PUT", "/files/", "OPTIONS, POST, GET"),
        ("PUT", "/files/{id}", "HEAD, PATCH, DELETE, GET, OPTIONS"),
        ("POST", "/files/{id}", "HEAD, PATCH, DELETE, GET, OPTIONS"),  # POST needs an override
        ("POST", "/healthz", "GET, HEAD"),
        ("DELETE", "/openapi.json", "GET"),
        ("PUT", "/files/{id}/link", "POST, OPTIONS"),
    ],
)
@pytest.mark.gen_test
async def test_405_lists_the_route_methods_in_allow(tus: Tus, method: str, path: str, allow: str) -> None:
    url = await tus.create_url(3)
    res = await tus.request(
        method, path.replace("{id}", upload_id_of(url)), body=b"" if method != "GET" else None
    )
    assert res.code == 405, res.body
    assert res.headers["Allow"] == allow
    assert json.loads(res.body)["error"]["code"] == "ERR_METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Upload-Offset", "0,0"),  # a repeated header arrives joined
        ("Upload-Offset", "0 0"),
        ("Upload-Offset", "+0"),
        ("Upload-Offset", "\u00bd"),
        ("Upload-Length", "\u00b2"),
        ("Upload-Metadata", "f\u00ffo YQ=="),
        ("Upload-Metadata", "foo \u00ff"),
        ("Upload-Concat", "final;/files/\u00ff"),
        ("Upload-Checksum", "sha1 \u00ff"),
        ("Upload-Defer-Length", "\u00b9"),
    ],
)
@pytest.mark.gen_test
async def test_non_ascii_and_odd_header_values_are_400(
    tus: Tus, stored: Stored, connect: Connect, name: str, value: str
) -> None:
    """Header bytes outside ASCII (sent raw, read by Tornado as latin-1)."""
    url = await tus.create_url(3)
    if name in ("Upload-Offset", "Upload-Checksum"):
        method, path = "PATCH", "/files/" + upload_id_of(url)
        headers = {**TUS, **PATCH_TYPE, "Upload-Offset": "0", "Content-Length": "3"}
    else:
        method, path = "POST", "/files/"
        headers = {**TUS, "Content-Length": "0"}
        if name != "Upload-Length" and name != "Upload-Defer-Length" and name != "Upload-Concat":
            headers["Upload-Length"] = "3"
    headers[name] = value
    conn = await connect()
    await conn.send(request_head(method, path, headers) + (b"abc" if method == "PATCH" else b""))
    res = await conn.read_response(method)
    assert res.status == 400, res
    assert json.loads(res.body)["error"]["code"].startswith("ERR_INVALID")
    assert await stored.ids() == [upload_id_of(url)]
    assert stored.content(upload_id_of(url)) == b""


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"PATCH /files/x HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"PATCH /files/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HEAD /files/x HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
        b"POST /files/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["request-line", "negative-length", "length-and-chunked", "nul-in-header", "bad-chunk"],
)
@pytest.mark.gen_test
async def test_unparsable_http_gets_400_and_server_lives_on(
    tus: Tus, stored: Stored, connect: Connect, raw: bytes
) -> None:
    """Tornado answers these itself (a bare 400, before any handler runs)."""
    conn = await connect()
    await conn.send(raw)
    answer = await conn.read_until_closed()
    assert answer.startswith(b"HTTP/1.1 4"), answer
    assert (await tus.request("OPTIONS", tus.collection, tus=False)).code == 204


class TestHugeHeaders:
    """Header blocks over ``max_header_size`` get a JSON 431 up to
    :data:`handlers.httpconn.HEADER_READ_CAP` (2 MiB, so 1 MiB of headers is
    answered); beyond that Tornado drops the connection unanswered; the server
    lives on."""

    LIMIT = 4096

    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_header_size": self.LIMIT}

    @pytest.mark.parametrize("method", ["POST", "HEAD", "PATCH", "OPTIONS"])
    @pytest.mark.gen_test
    async def test_over_the_limit_is_431(
        self, tus: Tus, stored: Stored, connect: Connect, method: str
    ) -> None:
        conn = await connect()
        headers = {**TUS, "Upload-Length": "3", "X-Padding": "p" * (self.LIMIT + 100)}
        path = "/files/" if method in ("POST", "OPTIONS") else "/files/" + "0" * 32
        await conn.send_request(method, path, headers)
        res = await conn.read_response(method)
        assert res.status == 431
        assert res.header("Tus-Resumable") == "1.0.0"
        if method != "HEAD":
            assert json.loads(res.body)["error"]["code"] == "ERR_HEADERS_TOO_LARGE"
        assert await stored.ids() == []

    @pytest.mark.gen_test
    async def test_many_headers_count_too(self, tus: Tus, connect: Connect) -> None:
        conn = await connect()
        headers = {**TUS, "Upload-Length": "3", **{f"X-H{i}": "v" * 40 for i in range(120)}}
        await conn.send_request("POST", "/files/", headers)
        assert (await conn.read_response()).status == 431

    @pytest.mark.gen_test
    async def test_just_under_the_limit_is_served(self, tus: Tus) -> None:
        res = await tus.create(3, headers={"X-Padding": "p" * (self.LIMIT - 600)})
        assert res.code == 201

    @pytest.mark.parametrize("shape", ["one header", "many headers"])
    @pytest.mark.gen_test(timeout=30)
    async def test_one_mib_of_headers_is_431_json(
        self, tus: Tus, stored: Stored, connect: Connect, shape: str
    ) -> None:
        if shape == "one header":
            padding = {"X-Padding": "p" * (1 << 20)}
        else:
            padding = {f"X-Pad-{i}": "p" * 1000 for i in range(1 << 10)}
        conn = await connect()
        await conn.send_request("POST", "/files/", {**TUS, "Upload-Length": "3", **padding})
        res = await conn.read_response("POST")
        assert res.status == 431
        assert json.loads(res.body)["error"]["code"] == "ERR_HEADERS_TOO_LARGE"
        assert str(self.LIMIT) in json.loads(res.body)["error"]["message"]
        assert await stored.ids() == []

    @pytest.mark.gen_test(timeout=30)
    async def test_beyond_the_read_cap_is_dropped_and_server_survives(
        self, tus: Tus, stored: Stored, connect: Connect
    ) -> None:
        conn = await connect()
        with contextlib.suppress(ConnectionError):  # the server may reset while we still send
            await conn.send_request(
                "POST", "/files/", {**TUS, "Upload-Length": "3", "X-Padding": "p" * (HEADER_READ_CAP + 1000)}
            )
        assert await conn.read_until_closed() == b""
        assert await stored.ids() == []
        res = await tus.create(3)
        assert res.code == 201
