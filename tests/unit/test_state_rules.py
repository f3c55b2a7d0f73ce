"""The one ``commit_offset`` guard (:mod:`tusd_py.state.rules`), as a pure value,
and the stores that must use it instead of a copy of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tusd_py.core import errors
from tusd_py.core.models import UploadInfo
from tusd_py.state.rules import OffsetCommit

STATE = Path(__file__).resolve().parents[2] / "tusd_py" / "state"


def _stored(offset: int) -> UploadInfo:
    return UploadInfo(id="a" * 32, owner="o", length=100, offset=offset, updated_at=1.0, expires_at=5.0)


def test_an_offset_never_moves_backwards() -> None:
    with pytest.raises(ValueError, match="never moves backwards"):
        OffsetCommit(10, 9, 2.0, None)
    assert OffsetCommit(10, 10, 2.0, None).new == 10


def test_the_requirement_and_the_changes_are_data() -> None:
    commit = OffsetCommit(10, 25, 2.0, 9.0)
    assert dict(commit.requires) == {"offset": 10}
    assert dict(commit.changes) == {"offset": 25, "updated_at": 2.0, "expires_at": 9.0}


def test_refusals_name_the_error() -> None:
    commit = OffsetCommit(10, 25, 2.0, None)
    assert isinstance(commit.refusal(None), errors.UploadNotFound)
    mismatch = commit.refusal(_stored(7))
    assert isinstance(mismatch, errors.OffsetMismatch)
    assert mismatch.message == "offset is 7, expected 10"
    assert commit.refusal(_stored(10)) is None
    # an engine refused, yet the record read afterwards would pass: still a mismatch
    assert isinstance(commit.refused(_stored(10)), errors.OffsetMismatch)
    assert isinstance(commit.refused(None), errors.UploadNotFound)


def test_decide_applies_or_raises() -> None:
    commit = OffsetCommit(10, 25, 2.0, None)
    after = commit.decide(_stored(10))
    assert (after.offset, after.updated_at, after.expires_at) == (25, 2.0, None)
    with pytest.raises(errors.OffsetMismatch):
        commit.decide(_stored(11))
    with pytest.raises(errors.UploadNotFound):
        commit.decide(None)


def test_no_store_carries_a_copy_of_the_guard() -> None:
    """Only rules.py raises OffsetMismatch or refuses backwards offsets."""
    carriers = sorted(
        p.name
        for p in STATE.glob("*.py")
        if p.name != "rules.py" and any(s in p.read_text() for s in ("OffsetMismatch(", 'moves backwards"'))
    )
    assert carriers == []
