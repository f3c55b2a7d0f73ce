"""Headers every response carries (TUS-CHECKLIST lines 6 and 28) and the
rendering of unexpected failures.

Line 6: every non-OPTIONS response, errors included, has
``Tus-Resumable: 1.0.0``; line 28: ``X-Content-Type-Options: nosniff``
everywhere. Requests carry an ``X-Request-ID`` (echoed when well-formed).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.http.conftest import server_errors
from tests.tusclient import PATCH_TYPE, Tus
from tusd_py.core import errors

CASES = [
    # (name, method, target, headers, body, status)
    ("options", "OPTIONS", "collection", {}, None, 204),
    ("create", "POST", "collection", {"Upload-Length": "4"}, None, 201),
    ("create-400", "POST", "collection", {}, None, 400),
    ("create-412", "POST", "collection", {"Tus-Resumable": "0.1"}, None, 412),
    ("head", "HEAD", "upload", {}, None, 200),
    ("head-404", "HEAD", "missing", {}, None, 404),
    ("patch", "PATCH", "upload", {**PATCH_TYPE, "Upload-Offset": "0"}, b"ab", 204),
    ("patch-409", "PATCH", "upload", {**PATCH_TYPE, "Upload-Offset": "3"}, b"ab", 409),
    ("patch-415", "PATCH", "upload", {"Upload-Offset": "0"}, b"ab", 415),
    (
        "patch-460",
        "PATCH",
        "upload",
        {**PATCH_TYPE, "Upload-Offset": "0", "Upload-Checksum": "md5 " + "A" * 22 + "=="},
        b"ab",
        460,
    ),
    ("get-409", "GET", "upload", {}, None, 409),
    ("delete", "DELETE", "upload", {}, None, 204),
    ("delete-404", "DELETE", "missing", {}, None, 404),
    ("put-405", "PUT", "upload", {}, b"", 405),
    ("route-404", "GET", "/nowhere", {}, None, 404),
    ("healthz", "GET", "/healthz", {}, None, 200),
    ("readyz", "GET", "/readyz", {}, None, 200),
]


@pytest.mark.parametrize(
    ("name", "method", "target", "headers", "body", "status"), CASES, ids=[c[0] for c in CASES]
)
@pytest.mark.gen_test
async def test_line6_28_every_response_carries_tus_resumable_and_nosniff(
    tus: Tus,
    base_url: str,
    name: str,
    method: str,
    target: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
) -> None:
    url = await tus.create_url(4)
    where = {"collection": tus.collection, "upload": url, "missing": tus.collection + "e" * 32}.get(
        target, base_url + target
    )
    res = await tus.request(method, where, headers, body)
    assert res.code == status, res.body
    assert res.headers["Tus-Resumable"] == "1.0.0"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r"[0-9a-f]{16}", res.headers["X-Request-ID"])
    if status >= 400:
        if method == "HEAD":
            assert res.body == b""
        else:
            assert res.headers["Content-Type"] == "application/json; charset=utf-8"
            assert set(json.loads(res.body)["error"]) == {"code", "message"}


@pytest.mark.parametrize(
    ("supplied", "echoed"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("bad id", False), ("<script>", False)],
)
@pytest.mark.gen_test
async def test_request_id_echoed_only_when_well_formed(tus: Tus, supplied: str, echoed: bool) -> None:
    res = await tus.create(1, headers={"X-Request-ID": supplied})
    assert (res.headers["X-Request-ID"] == supplied) is echoed


@pytest.mark.gen_test
async def test_unexpected_exception_is_a_json_500_and_flagged(
    tus: Tus, ctx: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (an untranslated exception) answers 500 ERR_INTERNAL without
    leaking details, and the suite's guard notices it."""
    url = await tus.create_url(1)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(ctx.service, "get", broken)
    res = await tus.head(url)
    assert res.code == 500 and res.body == b""
    assert res.headers["Tus-Resumable"] == "1.0.0"
    res = await tus.get(url)
    assert res.code == 500
    assert json.loads(res.body) == errors.TusError().to_dict()
    assert b"secret detail" not in res.body
    assert server_errors(caplog.get_records("call"))  # the guard would fail this test...
    caplog.clear()  # ...so the expected errors are cleared here
