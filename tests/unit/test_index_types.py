"""The index job's column types follow sqlite-utils' ``TypeTracker`` (the rules of
``sqlite-utils insert --csv --detect-types``) exactly, on any CSV text values."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils.utils import TypeTracker

from tusd_py.jobs.index import ColumnTypes

COLUMNS = ["a", "b", "c"]
#: Values near the integer/float/text borders, and anything else.
VALUES = st.one_of(
    st.sampled_from(["", "0", "-3", " 7 ", "1_000", "1.5", "1e3", "nan", "inf", "0x10", "٣", "abc", "1,2"]),
    st.integers().map(str),
    st.floats(allow_nan=False).map(str),
    st.text(max_size=5),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({c: VALUES for c in COLUMNS}), max_size=20))
def test_column_types_equal_type_tracker(rows: list[dict[str, str]]) -> None:
    theirs, ours = TypeTracker(), ColumnTypes(COLUMNS)
    assert list(theirs.wrap(rows)) == rows == list(ours.wrap(rows))
    expected = {c: "integer" for c in COLUMNS} | theirs.types  # no rows: TypeTracker knows no column
    assert ours.types == expected


def test_a_column_is_demoted_once_and_never_promoted() -> None:
    types = ColumnTypes(["n"])
    list(types.wrap([{"n": "1"}, {"n": "2.5"}, {"n": "3"}]))
    assert types.types == {"n": "float"}
    list(types.wrap([{"n": "x"}, {"n": "4"}]))
    assert types.types == {"n": "text"}
