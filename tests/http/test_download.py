"""GET downloads (TUS-CHECKLIST line 81, line 36 for Content-Disposition;
SPEC §2 "GET /files/{id}": Range, ETag, safe Content-Type/-Disposition)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import Tus, metadata
from tusd_py.ops.context import AppContext

DATA = b"0123456789abcdefghij"  # 20 bytes


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """No python-magic here: these tests set the recorded MIME type themselves."""
    return {"filetypes.enabled": False}


async def complete(tus: Tus, data: bytes = DATA, meta: str | None = None) -> str:
    headers = {"Upload-Metadata": meta} if meta else None
    url = await tus.create_url(len(data), headers=headers)
    if data:
        assert (await tus.patch(url, 0, data)).code == 204
    return url


@pytest.mark.gen_test
async def test_line81_complete_upload_is_served(tus: Tus) -> None:
    url = await complete(tus, meta=metadata(filename="notes.txt"))
    res = await tus.get(url)  # no Tus-Resumable: browsers can open download URLs
    assert res.code == 200
    assert res.body == DATA
    assert res.headers["Content-Length"] == "20"
    assert res.headers["Content-Type"] == "application/octet-stream"
    assert res.headers["Content-Disposition"].startswith('attachment; filename="notes.txt"')
    assert res.headers["Accept-Ranges"] == "bytes"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.headers["ETag"].startswith('"')


@pytest.mark.gen_test
async def test_line81_incomplete_upload_is_not_served(tus: Tus) -> None:
    url = await tus.create_url(20)
    await tus.patch(url, 0, DATA[:5])
    res = await tus.get(url)
    assert res.code == 409
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_INCOMPLETE"


@pytest.mark.parametrize(
    ("mime", "content_type", "disposition"),
    [
        (None, "application/octet-stream", "attachment"),
        ("image/png", "image/png", "inline"),
        ("text/plain", "text/plain", "inline"),
        ("text/html", "application/octet-stream", "attachment"),  # not on the allow-list
        ("image/svg+xml", "application/octet-stream", "attachment"),
    ],
)
@pytest.mark.gen_test
async def test_line81_type_from_sniffed_mime_and_allow_list(
    tus: Tus, ctx: AppContext, mime: str | None, content_type: str, disposition: str
) -> None:
    """The client's ``filetype`` metadata is never trusted for the response type."""
    url = await complete(tus, meta=metadata(filename="x", filetype="text/html"))
    if mime:
        await ctx.composer.state.update(upload_id_of(url), {"mime": mime})
    res = await tus.get(url)
    assert res.headers["Content-Type"] == content_type
    assert res.headers["Content-Disposition"].split(";")[0] == disposition


@pytest.mark.parametrize(
    "filename",
    [
        'evil".txt',
        "a\r\nSet-Cookie: x=1",
        "../../etc/passwd",
        "C:\\windows\\system32",
        "\u00e9t\u00e9 \u2603.txt",
        "",
        '"',
        "x" * 500,
    ],
)
@pytest.mark.gen_test
async def test_line36_content_disposition_is_sanitised(tus: Tus, filename: str) -> None:
    url = await complete(tus, meta=metadata(filename=filename))
    res = await tus.get(url)
    assert res.code == 200
    assert "Set-Cookie" not in res.headers
    value = res.headers["Content-Disposition"]
    assert "\r" not in value and "\n" not in value
    plain = value.split('filename="', 1)[1].split('"', 1)[0]
    assert plain and len(plain) <= 200
    assert all(c.isascii() and c.isprintable() and c not in '"\\/' for c in plain)
    encoded = value.split("filename*=UTF-8''", 1)[1]
    assert all(c.isascii() and c not in " \"';\\" for c in encoded)


@pytest.mark.parametrize(
    ("range_header", "status", "body", "content_range"),
    [
        ("bytes=0-4", 206, DATA[0:5], "bytes 0-4/20"),
        ("bytes=5-", 206, DATA[5:], "bytes 5-19/20"),
        ("bytes=-3", 206, DATA[-3:], "bytes 17-19/20"),
        ("bytes=15-100", 206, DATA[15:], "bytes 15-19/20"),
        ("bytes=19-19", 206, DATA[19:], "bytes 19-19/20"),
        ("bytes=-50", 206, DATA, "bytes 0-19/20"),
        ("bytes=0-1,4-5", 200, DATA, None),  # several ranges: the whole body
        ("items=0-1", 200, DATA, None),  # other units are ignored
    ],
)
@pytest.mark.gen_test
async def test_range_206(
    tus: Tus, range_header: str, status: int, body: bytes, content_range: str | None
) -> None:
    url = await complete(tus)
    res = await tus.get(url, headers={"Range": range_header})
    assert res.code == status
    assert res.body == body
    assert res.headers["Content-Length"] == str(len(body))
    assert res.headers.get("Content-Range") == content_range


@pytest.mark.parametrize("range_header", ["bytes=20-", "bytes=100-200", "bytes=-0"])
@pytest.mark.gen_test
async def test_range_416(tus: Tus, range_header: str) -> None:
    url = await complete(tus)
    res = await tus.get(url, headers={"Range": range_header})
    assert res.code == 416
    assert res.headers["Content-Range"] == "bytes */20"
    assert json.loads(res.body)["error"]["code"] == "ERR_RANGE_NOT_SATISFIABLE"


@pytest.mark.parametrize(
    "range_header",
    ["bytes=abc", "bytes=5-2", "bytes=-", "bytes=1-2-3", "bytes= x-", "bytes=" + "9" * 30 + "-"],
)
@pytest.mark.gen_test
async def test_range_malformed_is_400(tus: Tus, range_header: str) -> None:
    url = await complete(tus)
    res = await tus.get(url, headers={"Range": range_header})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_RANGE"


@pytest.mark.gen_test
async def test_range_on_empty_upload_is_416(tus: Tus) -> None:
    url = await complete(tus, b"")
    assert (await tus.get(url)).code == 200
    res = await tus.get(url, headers={"Range": "bytes=0-"})
    assert res.code == 416
    assert res.headers["Content-Range"] == "bytes */0"


@pytest.mark.gen_test
async def test_etag_if_none_match_304(tus: Tus) -> None:
    url = await complete(tus)
    etag = (await tus.get(url)).headers["ETag"]
    for inm in (etag, "*", f'"other", {etag}'):
        res = await tus.get(url, headers={"If-None-Match": inm})
        assert res.code == 304, inm
        assert res.body == b""
        assert res.headers["ETag"] == etag
    res = await tus.get(url, headers={"If-None-Match": '"other"'})
    assert res.code == 200 and res.body == DATA


@pytest.mark.gen_test
async def test_etag_differs_between_uploads(tus: Tus) -> None:
    one = await tus.get(await complete(tus))
    two = await tus.get(await complete(tus))
    assert one.headers["ETag"] != two.headers["ETag"]


@pytest.mark.gen_test
async def test_download_of_bigger_upload_streams_in_blocks(tus: Tus, stored: Stored) -> None:
    data = bytes(range(256)) * 5000  # 1.2 MiB > one read block
    url = await complete(tus, data)
    res = await tus.get(url)
    assert res.body == data
    res = await tus.get(url, headers={"Range": "bytes=1048570-1048580"})
    assert res.code == 206 and res.body == data[1048570:1048581]


class TestDownloadsDisabled:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.downloads": False}

    @pytest.mark.gen_test
    async def test_get_is_405(self, tus: Tus) -> None:
        url = await complete(tus)
        res = await tus.get(url)
        assert res.code == 405
        assert json.loads(res.body)["error"]["code"] == "ERR_METHOD_NOT_ALLOWED"
