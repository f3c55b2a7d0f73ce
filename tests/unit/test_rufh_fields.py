"""The draft's field parsers and version detection (pure functions).

Any header value either parses or is refused with a 4xx :class:`TusError`,
never another exception; serialised values parse back.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_header_properties import any_header, refuses_cleanly
from tusd_py.core import errors
from tusd_py.rufh import digests, fields, problems
from tusd_py.rufh.version import LATEST, Draft, detect


@settings(max_examples=300, deadline=None)
@given(any_header)
def test_parsers_refuse_cleanly(value: str) -> None:
    refuses_cleanly(lambda: fields.parse_boolean("Upload-Complete", value))
    refuses_cleanly(lambda: fields.parse_offset(value))
    refuses_cleanly(lambda: fields.parse_length(value))
    refuses_cleanly(lambda: digests.pick("Content-Digest", value))
    refuses_cleanly(lambda: detect("PATCH", {"Upload-Draft-Interop-Version": value}))
    digests.wanted({"Want-Repr-Digest": value})  # never raises


@given(st.integers(min_value=0, max_value=999_999_999_999_999), st.booleans())
def test_round_trips(number: int, flag: bool) -> None:
    assert fields.parse_integer("x", fields.integer(number)) == number
    assert fields.parse_boolean("x", fields.boolean(flag)) is flag


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("POST", {"Tus-Resumable": "1.0.0", "Upload-Complete": "?1"}, None),
        ("HEAD", {}, None),
        ("POST", {"Upload-Draft-Interop-Version": "3"}, Draft(3)),
        ("POST", {"Upload-Complete": "?0"}, Draft(None)),
        ("PATCH", {"Upload-Offset": "4", "Content-Type": "application/partial-upload"}, Draft(None)),
        ("PATCH", {"Upload-Offset": "4", "Content-Type": "application/offset+octet-stream"}, None),
    ],
)
def test_detect(method: str, headers: dict[str, str], expected: Draft | None) -> None:
    assert detect(method, headers) == expected


def test_versions_differ_where_the_drafts_do() -> None:
    assert Draft(3).complete_header(True) == ("Upload-Incomplete", "?0")
    assert Draft(4).complete_header(True) == ("Upload-Complete", "?1")
    assert not Draft(5).needs_partial_type and Draft(6).needs_partial_type
    assert (Draft(6).expiry_key, Draft(7).expiry_key) == ("expires", "max-age")
    assert Draft(None).level == LATEST and not Draft(None).sends_interim
    assert not Draft(5).sends_progress and Draft(6).sends_progress
    with pytest.raises(errors.UnsupportedVersion):
        detect("POST", {"Upload-Draft-Interop-Version": "9"})


def test_problem_types() -> None:
    assert problems.problem_type("ERR_MISMATCHED_OFFSET").endswith("#mismatching-upload-offset")
    assert problems.problem_type("ERR_UPLOAD_NOT_FOUND") == "about:blank"


def test_problem_bodies() -> None:
    body = json.loads(
        problems.problem_body(409, "ERR_MISMATCHED_OFFSET", "resume from 8", {"expected-offset": 8})
    )
    assert body["expected-offset"] == 8 and body["status"] == 409 and body["detail"] == "resume from 8"
    plain = json.loads(problems.problem_body(404, "ERR_UPLOAD_NOT_FOUND", "upload not found"))
    assert (plain["type"], plain["title"], plain["code"]) == (
        "about:blank",
        "Not Found",
        "ERR_UPLOAD_NOT_FOUND",
    )
