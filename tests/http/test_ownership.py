"""Every upload-URL request is authorised against the upload's owner
(TUS-CHECKLIST line 27; SPEC §12 "Cross-user access → 404").

Runs with a header-based test authenticator standing in for JWT.
"""

from __future__ import annotations

import json

import pytest

from tests.http.conftest import Stored, upload_id_of
from tests.http.fake_auth import as_user, ctx  # noqa: F401  (the ctx fixture with test auth)
from tests.tusclient import PATCH_TYPE, Tus

ALICE = as_user("alice")
MALLORY = as_user("mallory")
ROOT = as_user("root")


async def alice_upload(tus: Tus, data: bytes = b"abc", length: int = 6) -> str:
    res = await tus.create(length, headers=ALICE)
    assert res.code == 201
    url = str(res.headers["Location"])
    if data:
        assert (await tus.patch(url, 0, data, headers=ALICE)).code == 204
    return url


@pytest.mark.gen_test
async def test_line27_owner_recorded(tus: Tus, stored: Stored) -> None:
    url = await alice_upload(tus)
    info = await stored.ctx.composer.state.get(upload_id_of(url))
    assert info is not None and info.owner == "alice"


@pytest.mark.gen_test
async def test_line27_other_users_get_404_and_change_nothing(tus: Tus, stored: Stored) -> None:
    url = await alice_upload(tus)
    head = await tus.head(url, headers=MALLORY)
    assert head.code == 404 and head.body == b""
    res = await tus.patch(url, 3, b"def", headers=MALLORY)
    assert res.code == 404
    assert json.loads(res.body)["error"]["code"] == "ERR_UPLOAD_NOT_FOUND"
    assert (await tus.delete(url, headers=MALLORY)).code == 404
    assert (await tus.get(url, headers=MALLORY)).code == 404
    assert stored.content(upload_id_of(url)) == b"abc"
    assert (await tus.head(url, headers=ALICE)).headers["Upload-Offset"] == "3"


@pytest.mark.gen_test
async def test_line27_admin_sees_everyone(tus: Tus) -> None:
    url = await alice_upload(tus, b"abcdef")
    assert (await tus.head(url, headers=ROOT)).code == 200
    assert (await tus.get(url, headers=ROOT)).body == b"abcdef"


@pytest.mark.parametrize("method", ["POST", "HEAD", "PATCH", "DELETE", "GET"])
@pytest.mark.gen_test
async def test_anonymous_requests_are_401(tus: Tus, stored: Stored, method: str) -> None:
    url = await alice_upload(tus, b"abcdef")
    target = tus.collection if method == "POST" else url
    headers = {"Upload-Length": "1"} if method == "POST" else {**PATCH_TYPE, "Upload-Offset": "6"}
    res = await tus.request(method, target, headers)
    assert res.code == 401
    assert res.headers["WWW-Authenticate"].startswith("Bearer")
    assert res.headers["Tus-Resumable"] == "1.0.0"
    if method == "HEAD":
        assert res.body == b""
    else:
        assert json.loads(res.body)["error"]["code"] == "ERR_UNAUTHENTICATED"
    assert await stored.ids() == [upload_id_of(url)]


@pytest.mark.gen_test
async def test_invalid_credentials_are_401(tus: Tus, stored: Stored) -> None:
    res = await tus.create(1, headers=as_user("!forged"))
    assert res.code == 401
    assert await stored.ids() == []


@pytest.mark.gen_test
async def test_line27_final_cannot_use_others_partials(tus: Tus, stored: Stored) -> None:
    res = await tus.create(2, headers={**ALICE, "Upload-Concat": "partial"})
    partial = res.headers["Location"]
    await tus.patch(partial, 0, b"ab", headers=ALICE)
    concat = {"Upload-Concat": "final;/files/" + upload_id_of(partial)}
    res = await tus.request("POST", tus.collection, {**MALLORY, **concat})
    assert res.code == 404
    assert await stored.ids() == [upload_id_of(partial)]
    res = await tus.request("POST", tus.collection, {**ALICE, **concat})
    assert res.code == 201
