"""IETF draft resumable uploads, every interop version (TUS-CHECKLIST §2).

Each version runs the same story over raw sockets against the in-process
server: creation with part of the body (104 then 201 with Location and
Upload-Limit), offset retrieval, a wrong offset (409 mismatching-upload-offset),
the rest appended as complete, the bytes downloaded like any upload, appends to
the complete upload refused, cancellation. ``None`` is a newest draft that
sends no interop version: no 104, tus HEAD/GET still see the upload.
"""

from __future__ import annotations

import pytest

from tests.http.conftest import Connect, Stored, upload_id_of
from tests.http.rufh_client import (
    PARTIAL,
    PROBLEM_BASE,
    complete_header,
    exchange,
    path_of,
    version_headers,
)
from tests.tusclient import Tus

VERSIONS = [3, 4, 5, 6, 7, 8, None]
DATA = b"0123456789abcdefghij"


def _append_type(version: int | None) -> dict[str, str]:
    return PARTIAL if version is None or version >= 6 else {}


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: f"interop-{v}")
@pytest.mark.gen_test(timeout=30)
async def test_create_resume_append_complete(
    version: int | None, tus: Tus, stored: Stored, connect: Connect
) -> None:
    vh = version_headers(version)
    created = await exchange(
        connect,
        "POST",
        "/files/",
        {**vh, **complete_header(version, False), "Upload-Length": str(len(DATA))},
        DATA[:8],
    )
    assert created.status == 201, created.final
    location = created.header("Location")
    assert location and created.header("Upload-Offset") == "8"
    assert created.header("Upload-Limit")
    assert created.header("Tus-Resumable") is None
    if version is None:
        assert created.interims == []
    else:
        assert [r.status for r in created.interims] == [104]
        interim = created.interims[0]
        assert interim.reason == "Upload Resumption Supported"
        assert interim.header("Location") == location
        assert interim.header("Upload-Draft-Interop-Version") == str(version)
        assert interim.header("Upload-Limit") == created.header("Upload-Limit")
        assert created.header("Upload-Draft-Interop-Version") == str(version)
    path = path_of(location)

    if version is not None:  # a header-less HEAD is tus's (412 without Tus-Resumable)
        head = await exchange(connect, "HEAD", path, vh)
        assert head.status == 204
        assert head.header("Upload-Offset") == "8"
        assert head.header("Upload-Length") == str(len(DATA))
        assert head.header("Cache-Control") == "no-store"
        assert head.header("Upload-Limit")
        name, value = next(iter(complete_header(version, False).items()))
        assert head.header(name) == value

    wrong = await exchange(
        connect,
        "PATCH",
        path,
        {**vh, **_append_type(version), **complete_header(version, True), "Upload-Offset": "3"},
        DATA[3:],
    )
    assert wrong.status == 409
    assert wrong.header("Upload-Offset") == "8"
    problem = wrong.problem()
    assert problem["type"] == PROBLEM_BASE + "mismatching-upload-offset"
    assert (problem["expected-offset"], problem["provided-offset"]) == (8, 3)
    assert stored.content(upload_id_of(location)) == DATA[:8]

    done = await exchange(
        connect,
        "PATCH",
        path,
        {**vh, **_append_type(version), **complete_header(version, True), "Upload-Offset": "8"},
        DATA[8:],
    )
    assert done.status == 204, done.final
    assert done.header("Upload-Offset") == str(len(DATA))
    name, value = next(iter(complete_header(version, True).items()))
    assert done.header(name) == value

    # the same upload, seen through tus
    tus_head = await tus.head(path)
    assert tus_head.headers["Upload-Offset"] == str(len(DATA))
    assert (await tus.get(path)).body == DATA

    more = await exchange(
        connect,
        "PATCH",
        path,
        {**vh, **_append_type(version), **complete_header(version, True), "Upload-Offset": str(len(DATA))},
        b"x",
    )
    assert more.status == 400
    assert more.problem()["type"] == PROBLEM_BASE + "inconsistent-upload-length"
    empty = await exchange(
        connect,
        "PATCH",
        path,
        {**vh, **_append_type(version), **complete_header(version, True), "Upload-Offset": str(len(DATA))},
    )
    assert empty.status == 400
    assert empty.problem()["type"] == PROBLEM_BASE + "completed-upload"
    assert (await tus.get(path)).body == DATA


@pytest.mark.parametrize("version", [3, 6, 8], ids=lambda v: f"interop-{v}")
@pytest.mark.gen_test(timeout=30)
async def test_complete_in_one_request_and_cancel(
    version: int, tus: Tus, stored: Stored, connect: Connect
) -> None:
    vh = version_headers(version)
    whole = await exchange(
        connect,
        "POST",
        "/files/",
        {
            **vh,
            **complete_header(version, True),
            "Content-Type": "text/plain",
            "Content-Disposition": 'inline; filename="notes.txt"',
        },
        DATA,
    )
    assert whole.status == 201
    location = whole.header("Location")
    assert location and whole.header("Upload-Offset") == str(len(DATA))
    name, value = next(iter(complete_header(version, True).items()))
    assert whole.header(name) == value
    head = await tus.head(path_of(location))
    assert head.headers["Upload-Length"] == str(len(DATA))
    assert "filename bm90ZXMudHh0" in head.headers["Upload-Metadata"]  # notes.txt
    assert "filetype dGV4dC9wbGFpbg==" in head.headers["Upload-Metadata"]  # text/plain

    empty = await exchange(connect, "POST", "/files/", {**vh, **complete_header(version, False)})
    assert empty.status == 201
    path = path_of(empty.header("Location"))
    gone = await exchange(connect, "DELETE", path, vh)
    assert gone.status == 204
    assert (await exchange(connect, "HEAD", path, vh)).status == 404
    assert await stored.ids() == [upload_id_of(location)]


@pytest.mark.gen_test(timeout=30)
async def test_inconsistent_lengths_and_bad_fields(stored: Stored, connect: Connect) -> None:
    vh = version_headers(6)
    res = await exchange(
        connect, "POST", "/files/", {**vh, "Upload-Complete": "?1", "Upload-Length": "99"}, DATA
    )
    assert res.status == 400
    assert res.problem()["type"] == PROBLEM_BASE + "inconsistent-upload-length"
    res = await exchange(connect, "POST", "/files/", {**vh, "Upload-Complete": "yes"}, DATA)
    assert res.status == 400 and res.problem()["code"] == "ERR_INVALID_HEADER"
    res = await exchange(connect, "POST", "/files/", vh, DATA)
    assert res.status == 400 and "Upload-Complete is required" in res.problem()["detail"]
    res = await exchange(
        connect, "POST", "/files/", {"Upload-Draft-Interop-Version": "2", "Upload-Complete": "?1"}, DATA
    )
    assert res.status == 412
    assert res.header("Upload-Draft-Interop-Version") == "8"
    assert await stored.ids() == []

    created = await exchange(connect, "POST", "/files/", {**vh, "Upload-Complete": "?0"})
    path = path_of(created.header("Location"))
    plain = await exchange(
        connect,
        "PATCH",
        path,
        {**vh, "Upload-Complete": "?0", "Upload-Offset": "0", "Content-Type": "application/octet-stream"},
        DATA,
    )
    assert plain.status == 415
    assert plain.problem()["code"] == "ERR_INVALID_CONTENT_TYPE"
    no_offset = await exchange(connect, "PATCH", path, {**vh, **PARTIAL, "Upload-Complete": "?0"}, DATA)
    assert no_offset.status == 400 and no_offset.problem()["code"] == "ERR_INVALID_OFFSET"
