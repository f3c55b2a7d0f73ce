"""The ``index`` job: a CSV or NDJSON upload into a table of the rows database.

The stored file is streamed line by line (:meth:`UploadSource.lines`), parsed,
and inserted in batches of :data:`BATCH` rows with sqlite-utils into a
temporary table, which :meth:`RowsDB.publish` then swaps in atomically; a
re-run (say after a worker was killed) starts its temporary table afresh, so
every row is in the published table once.

* CSV: column names from the header row (blank ones become ``column_<n>``,
  repeats get ``_2``, ``_3``...), types inferred by the rules of
  sqlite-utils' ``TypeTracker`` (integer if every non-empty value parses as
  one, else float, else text, as ``sqlite-utils insert --csv --detect-types``
  does) by :class:`ColumnTypes`, which applies them at a fraction of the cost
  (``TypeTracker`` builds a tracker object per value: 2/3 of the job's time
  under cProfile). A row with another number of fields than the header is
  malformed. Blank lines are skipped.
* NDJSON: one JSON object per line; columns are the union of keys (made safe
  as for CSV), types
  from the JSON values (objects and arrays are stored as JSON text). A line
  that is not a JSON object is malformed.

Malformed lines are skipped and counted, the first :data:`KEEP_MALFORMED`
kept with line number and reason; with ``[jobs] strict`` the first one fails
the job (permanently: the data will not change on retry).
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tusd_py.core.models import UploadInfo
from tusd_py.jobs.records import JobRecord
from tusd_py.jobs.rows import RowsDB, table_name
from tusd_py.jobs.runner import PermanentJobError
from tusd_py.jobs.source import UploadSource

BATCH = 1000
KEEP_MALFORMED = 100
CSV_TYPES = frozenset({"text/csv", "application/csv"})
NDJSON_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
#: Characters not kept in a column name.
UNSAFE = re.compile(r"[\x00-\x1f\x7f\[\]`]")
#: Metadata keys a client may declare the type with.
TYPE_KEYS = ("filetype", "content_type", "contentType", "type")


def tabular_format(info: UploadInfo, *, by_name: bool = True) -> str | None:
    """``"csv"``, ``"ndjson"`` or None, from the declared type, the sniffed type, then
    (with ``by_name``: an explicit request) the file name's extension."""
    meta = info.metadata
    candidates = [meta[k].decode("utf-8", "replace") for k in TYPE_KEYS if meta.get(k)]
    candidates.append(info.mime or "")
    for value in candidates:
        kind = value.split(";", 1)[0].strip().lower()
        if kind in CSV_TYPES:
            return "csv"
        if kind in NDJSON_TYPES:
            return "ndjson"
    if not by_name:
        return None
    name = (info.filename or "").lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".ndjson", ".jsonl")):
        return "ndjson"
    return None


@dataclass
class Malformed:
    """Malformed lines seen so far (count, and the first few)."""

    strict: bool
    count: int = 0
    kept: list[dict[str, Any]] = field(default_factory=list)

    def add(self, line: int, reason: str) -> None:
        if self.strict:
            raise PermanentJobError(f"line {line}: {reason} (strict indexing)")
        self.count += 1
        if len(self.kept) < KEEP_MALFORMED:
            self.kept.append({"line": line, "reason": reason})


def column_names(header: list[str]) -> list[str]:
    """Usable, distinct SQLite column names for a header row (control characters
    and brackets replaced; blank ones numbered)."""
    names: list[str] = []
    for n, raw in enumerate(header, 1):
        base = UNSAFE.sub("_", raw).strip() or f"column_{n}"
        name, k = base, 1
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.append(name)
    return names


def csv_rows(lines: Iterable[str], bad: Malformed) -> tuple[list[str], Iterator[dict[str, Any]]]:
    """The header's column names and an iterator of row dicts."""
    reader = csv.reader(iter(lines))
    header: list[str] = []
    while not header:
        try:
            header = next(reader)
        except StopIteration:
            return [], iter(())
    columns = column_names(header)

    def rows() -> Iterator[dict[str, Any]]:
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                bad.add(reader.line_num, f"CSV error: {exc}")
                continue
            if not values:
                continue
            if len(values) != len(columns):
                bad.add(reader.line_num, f"expected {len(columns)} fields, got {len(values)}")
                continue
            yield dict(zip(columns, values, strict=True))

    return columns, rows()


def ndjson_rows(lines: Iterable[str], bad: Malformed) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            bad.add(number, f"invalid JSON: {exc}")
            continue
        if not isinstance(value, dict) or not value:
            bad.add(number, "not a non-empty JSON object")
            continue
        yield {UNSAFE.sub("_", key).strip() or "column": item for key, item in value.items()}


class ColumnTypes:
    """The SQLite type of each CSV column, from the values seen (see module docstring).

    A column stays ``integer`` while every non-empty value passes ``int()``,
    then ``float`` while they pass ``float()``, then is ``text`` and no longer
    looked at (a column with no non-empty value is ``integer``, as in
    sqlite-utils)."""

    def __init__(self, columns: list[str]) -> None:
        self._ints = list(columns)
        self._floats: list[str] = []
        self._texts: list[str] = []

    def wrap(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Pass ``rows`` through, noting their values' types."""
        for row in rows:
            if self._ints:
                self._check(row, self._ints, int, self._floats)
            if self._floats:
                self._check(row, self._floats, float, self._texts)
            yield row

    @staticmethod
    def _check(row: dict[str, Any], names: list[str], parse: Any, demoted: list[str]) -> None:
        """Move the columns of ``names`` whose value in ``row`` ``parse`` rejects to ``demoted``."""
        failed: list[str] = []
        for name in names:
            value = row[name]
            if value:
                try:
                    parse(value)
                except (ValueError, TypeError):
                    failed.append(name)
        for name in failed:
            names.remove(name)
            demoted.append(name)

    @property
    def types(self) -> dict[str, str]:
        """Column name → ``integer`` | ``float`` | ``text``."""
        return {
            **{n: "integer" for n in self._ints},
            **{n: "float" for n in self._floats},
            **{n: "text" for n in self._texts},
        }


def counted(rows: Iterator[dict[str, Any]], tally: list[int]) -> Iterator[dict[str, Any]]:
    for row in rows:
        tally[0] += 1
        yield row


def index_job(job: JobRecord, source: UploadSource, rows_db: RowsDB, strict: bool) -> dict[str, Any]:
    """Index ``job.file_id`` (see module docstring); returns the job result."""
    info = source.upload(job.file_id)
    fmt = job.payload.get("format") or tabular_format(info)
    if fmt not in ("csv", "ndjson"):
        raise PermanentJobError(
            "only CSV (text/csv) and NDJSON (application/x-ndjson) uploads can be indexed"
        )
    import sqlite_utils  # loaded by the first index job, not by the server (see tusd_py.jobs.rows)

    bad = Malformed(strict=strict)
    tmp = "_tmp_" + table_name(job.file_id)
    conn = rows_db.connect()
    db = sqlite_utils.Database(conn)
    try:
        db.execute("PRAGMA synchronous=NORMAL")  # until publish (see tusd_py.jobs.rows)
        db.execute(f"DROP TABLE IF EXISTS [{tmp}]")
        table = db.table(tmp)
        tally = [0]
        if fmt == "csv":
            header, rows = csv_rows(source.lines(info), bad)
            if header:
                tracker = ColumnTypes(header)
                table.create({name: str for name in header})
                table.insert_all(tracker.wrap(counted(rows, tally)), batch_size=BATCH)
                table.transform(types=tracker.types)
        else:
            table.insert_all(
                counted(ndjson_rows(source.lines(info), bad), tally), batch_size=BATCH, alter=True
            )
        created = table.exists()
        columns = (
            [{"name": c.name, "type": c.type.lower() or "text"} for c in table.columns] if created else []
        )
        result = {
            "format": fmt,
            "table": table_name(job.file_id),
            "rows": tally[0],
            "columns": columns,
            "malformed": bad.count,
            "malformed_lines": bad.kept,
        }
        meta = {"rows": tally[0], "columns": columns, "job_id": job.job_id, "indexed_at": time.time()}
        rows_db.publish(conn, job.file_id, tmp if created else None, meta)
        return result
    finally:
        db.close()
