"""Listing cursors and query parsing; status documents (pure parts)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tusd_py.core import errors
from tusd_py.core.models import UploadInfo, UploadState, iso_time
from tusd_py.rest.listing import decode_cursor, encode_cursor, parse_query
from tusd_py.rest.status import percent_of, state_of, status_document

ID = "ab" * 16


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_cursor_round_trip(created_at: float) -> None:
    info = UploadInfo(id=ID, owner="u", length=1, created_at=created_at)
    assert decode_cursor(encode_cursor(info)) == (created_at, ID)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!",
        base64.urlsafe_b64encode(b'[2, 1.0, "x"]').decode(),
        base64.urlsafe_b64encode(b'[1, "1", "x"]').decode(),
        base64.urlsafe_b64encode(b'[1, true, "x"]').decode(),
        base64.urlsafe_b64encode(b"{}").decode(),
        base64.urlsafe_b64encode(b'[1, 1e999, "x"]').decode(),
        "A" * 300,
    ],
)
def test_foreign_cursors_are_400(token: str) -> None:
    with pytest.raises(errors.InvalidQuery):
        decode_cursor(token)


def test_parse_query_defaults_and_limits() -> None:
    q = parse_query({}, default_limit=50, max_limit=100)
    assert q.limit == 50 and q.after is None and q.state is None and q.visibility is None
    assert parse_query({"limit": "100", "state": "complete"}, default_limit=50, max_limit=100).limit == 100
    with pytest.raises(errors.InvalidQuery, match="limit"):
        parse_query({"limit": "101"}, default_limit=50, max_limit=100)


def test_status_document_fields() -> None:
    info = UploadInfo(
        id=ID, owner="u", length=200, offset=50, created_at=0.0, updated_at=1.5, expires_at=100.0
    )
    doc = status_document(info, now=10.0)
    assert doc["percent"] == 25.0 and doc["state"] == "uploading"
    assert doc["created_at"] == "1970-01-01T00:00:00.000Z" and doc["updated_at"] == "1970-01-01T00:00:01.500Z"
    assert status_document(info, now=101.0)["state"] == "expired"
    assert percent_of(info.replace(length=None)) is None
    assert percent_of(info.replace(length=0, offset=0)) == 100.0
    assert percent_of(info.replace(length=3, offset=1)) == 33.33
    assert state_of(info.replace(state=UploadState.COMPLETE, expires_at=None), 1e12) == "complete"
    assert iso_time(None) is None
