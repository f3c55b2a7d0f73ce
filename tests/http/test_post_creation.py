"""POST creation (TUS-CHECKLIST §1.2 lines 30–35, 38; version checks 6–8 on POST)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.conftest import Stored, upload_id_of
from tests.tusclient import Tus, metadata


@pytest.mark.gen_test
async def test_line30_create_then_head(tus: Tus, base_url: str) -> None:
    res = await tus.create(100)
    assert res.code == 201
    assert res.headers["Tus-Resumable"] == "1.0.0"
    location = res.headers["Location"]
    assert location.startswith(base_url + "/files/")
    assert res.body == b""
    head = await tus.head(location)
    assert head.code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "100"


@pytest.mark.gen_test
async def test_created_ids_are_unguessable_and_distinct(tus: Tus) -> None:
    ids = {upload_id_of(await tus.create_url(1)) for _ in range(5)}
    assert len(ids) == 5
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize(
    ("line", "headers", "status", "code"),
    [
        (7, {"Tus-Resumable": "0.2.2", "Upload-Length": "5"}, 412, "ERR_UNSUPPORTED_VERSION"),
        (8, {"Tus-Resumable": "", "Upload-Length": "5"}, 412, "ERR_UNSUPPORTED_VERSION"),
        (31, {"Content-Type": "text/plain"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (32, {"Upload-Length": "5", "Upload-Defer-Length": "1"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (10, {"Upload-Length": "-1"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (10, {"Upload-Length": "abc"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (10, {"Upload-Length": "1.5"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (10, {"Upload-Length": ""}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (10, {"Upload-Length": "99999999999999999999999"}, 400, "ERR_INVALID_UPLOAD_LENGTH"),
        (35, {"Upload-Length": "5", "Upload-Metadata": "name !!notbase64"}, 400, "ERR_INVALID_METADATA"),
        (35, {"Upload-Length": "5", "Upload-Metadata": "a YQ==,a YQ=="}, 400, "ERR_INVALID_METADATA"),
        (35, {"Upload-Length": "5", "Upload-Metadata": "a\tb YQ=="}, 400, "ERR_INVALID_METADATA"),
        (35, {"Upload-Length": "5", "Upload-Metadata": "a YQ==,,b"}, 400, "ERR_INVALID_METADATA"),
        (35, {"Upload-Length": "5", "Upload-Metadata": "a  YQ=="}, 400, "ERR_INVALID_METADATA"),
        (35, {"Upload-Length": "5", "Upload-Metadata": "k\u00e9y YQ=="}, 400, "ERR_INVALID_METADATA"),
    ],
    ids=lambda v: str(v) if isinstance(v, int) else None,
)
@pytest.mark.gen_test
async def test_refused_creation_has_no_side_effect(
    tus: Tus,
    stored: Stored,
    line: int,
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    """Lines 7, 8, 10, 31, 32, 35: refused with a JSON error, nothing created."""
    all_headers = {"Tus-Resumable": "1.0.0", **headers}
    if all_headers["Tus-Resumable"] == "":
        del all_headers["Tus-Resumable"]
    res = await tus.request("POST", tus.collection, all_headers, tus=False)
    assert res.code == status, res.body
    assert json.loads(res.body)["error"]["code"] == code
    assert res.headers["Tus-Resumable"] == "1.0.0"  # line 6
    assert res.headers["Content-Type"].startswith("application/json")
    assert "Location" not in res.headers
    if status == 412:
        assert res.headers["Tus-Version"] == "1.0.0"  # lines 7, 8
    assert await stored.ids() == []
    assert stored.files() == []


class TestMaxSize:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.max_size": 100}

    @pytest.mark.gen_test
    async def test_line33_length_above_max_size_is_413(self, tus: Tus, stored: Stored) -> None:
        res = await tus.create(101)
        assert res.code == 413
        assert json.loads(res.body)["error"]["code"] == "ERR_MAX_SIZE_EXCEEDED"
        assert await stored.ids() == []

    @pytest.mark.gen_test
    async def test_line33_length_at_max_size_is_accepted(self, tus: Tus) -> None:
        res = await tus.create(100)
        assert res.code == 201


@pytest.mark.gen_test
async def test_line34_zero_length_upload_is_complete_at_once(tus: Tus, stored: Stored) -> None:
    res = await tus.create(0)
    assert res.code == 201
    assert "Upload-Expires" not in res.headers  # complete: cannot expire
    url = res.headers["Location"]
    head = await tus.head(url)
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "0"
    info = await stored.ctx.composer.state.get(upload_id_of(url))
    assert info is not None and info.is_complete
    got = await tus.get(url)
    assert got.code == 200 and got.body == b""


@pytest.mark.parametrize(
    "raw",
    [
        metadata(filename="report.pdf", filetype="application/pdf"),
        "is_confidential",  # line 35: empty value, space omitted
        "is_confidential,name Zm9v",
        "empty ",  # value empty, space present
    ],
)
@pytest.mark.gen_test
async def test_line15_35_metadata_echoed_as_supplied(tus: Tus, raw: str) -> None:
    url = await tus.create_url(5, headers={"Upload-Metadata": raw})
    head = await tus.head(url)
    assert head.headers["Upload-Metadata"] == raw.strip()


@pytest.mark.gen_test
async def test_metadata_absent_means_no_header(tus: Tus) -> None:
    url = await tus.create_url(5)
    head = await tus.head(url)
    assert "Upload-Metadata" not in head.headers


@pytest.mark.gen_test
async def test_huge_metadata_is_refused(tus: Tus, stored: Stored) -> None:
    res = await tus.create(5, headers={"Upload-Metadata": "k " + "QUFB" * 5000})
    assert res.code == 400
    assert json.loads(res.body)["error"]["code"] == "ERR_INVALID_METADATA"
    assert await stored.ids() == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "multipart/form-data; b=x"])
@pytest.mark.gen_test
async def test_line38_content_type_ignored_without_body(tus: Tus, content_type: str) -> None:
    res = await tus.create(10, headers={"Content-Type": content_type})
    assert res.code == 201
    head = await tus.head(res.headers["Location"])
    assert head.headers["Upload-Offset"] == "0"


@pytest.mark.gen_test
async def test_line53_upload_expires_in_201(tus: Tus) -> None:
    res = await tus.create(10)
    assert res.headers["Upload-Expires"].endswith(" GMT")


@pytest.mark.gen_test
async def test_post_on_collection_with_slashless_path(tus: Tus, base_url: str) -> None:
    res = await tus.request("POST", base_url + "/files", {"Upload-Length": "1"})
    assert res.code == 201
