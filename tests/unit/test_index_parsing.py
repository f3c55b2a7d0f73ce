"""Line parsing of the index job (pure functions; the whole job runs in tests/http/test_jobs.py)."""

from __future__ import annotations

import pytest

from tusd_py.jobs.index import KEEP_MALFORMED, Malformed, column_names, csv_rows, ndjson_rows
from tusd_py.jobs.runner import PermanentJobError


def test_column_names_are_safe_and_distinct() -> None:
    assert column_names(["a", "", "a", " b ", "x\x00y", "[z]", "a"]) == [
        "a", "column_2", "a_2", "b", "x_y", "_z_", "a_3",
    ]  # fmt: skip


def test_csv_rows_skip_blank_lines_and_record_wrong_field_counts() -> None:
    bad = Malformed(strict=False)
    columns, rows = csv_rows(iter(["h1,h2\n", "1,2\n", "\n", "3\n", '"multi\n', 'line",4\n', "5,6,7\n"]), bad)
    assert columns == ["h1", "h2"]
    assert list(rows) == [{"h1": "1", "h2": "2"}, {"h1": "multi\nline", "h2": "4"}]
    assert bad.count == 2 and bad.kept == [
        {"line": 4, "reason": "expected 2 fields, got 1"},
        {"line": 7, "reason": "expected 2 fields, got 3"},
    ]


def test_only_the_first_malformed_lines_are_kept() -> None:
    bad = Malformed(strict=False)
    list(ndjson_rows(iter(["x\n"] * (KEEP_MALFORMED + 5)), bad))
    assert bad.count == KEEP_MALFORMED + 5 and len(bad.kept) == KEEP_MALFORMED


def test_strict_fails_on_the_first_malformed_line() -> None:
    with pytest.raises(PermanentJobError, match="line 2"):
        list(ndjson_rows(iter(['{"a": 1}\n', "oops\n"]), Malformed(strict=True)))


def test_empty_csv_has_no_columns() -> None:
    columns, rows = csv_rows(iter([]), Malformed(strict=False))
    assert columns == [] and list(rows) == []
