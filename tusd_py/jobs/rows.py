"""The rows database: one table per indexed upload, and paging through it.

``<data_dir>/rows.db`` (SQLite, WAL) holds ``rows_<file id>`` tables written
by the ``index`` job and ``_indexed``, one row per indexed upload (table,
row count, columns as JSON ``[{"name", "type"}]``). A table is published by
renaming a fully written temporary table in one transaction with its
``_indexed`` row, so a reader sees the old table or the new one, never a
half-written one, and a re-run (after a killed worker) leaves each row once.
The temporary table is written with ``synchronous=NORMAL`` (WAL: batches are
not fsynced one by one; the file stays consistent on power loss) and the
publishing transaction with ``synchronous=FULL``, whose WAL sync makes every
earlier batch durable too: what ``_indexed`` names is on disk.

Pages are in ``rowid`` order (insertion = file order); the cursor is the last
rowid served, so paging is stable while the table is unchanged.

Connections are plain ``sqlite3`` ones: only the ``index`` job wraps its own
in sqlite-utils (:mod:`tusd_py.jobs.index`), so reading, dropping and
publishing tables does not load sqlite-utils (nor click, pluggy, dateutil).
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

META = "_indexed"


def table_name(file_id: str) -> str:
    """The rows table of ``file_id`` (only ``[A-Za-z0-9_]`` kept)."""
    return "rows_" + re.sub(r"[^A-Za-z0-9_]", "_", file_id)


@dataclass(frozen=True)
class Page:
    columns: list[str]
    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int


class RowsDB:
    """Opens connections to the rows database (one per call site and thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        """A new connection (WAL, ``_indexed`` created); the caller closes it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS [{META}] (file_id TEXT PRIMARY KEY, table_name TEXT,"
            " rows INTEGER, columns TEXT, job_id TEXT, indexed_at REAL)"
        )
        return conn

    def publish(self, conn: sqlite3.Connection, file_id: str, tmp: str | None, meta: dict[str, Any]) -> None:
        """Atomically replace ``file_id``'s table by ``tmp`` (None: no table) and record ``meta``."""
        final = table_name(file_id)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"DROP TABLE IF EXISTS [{final}]")
            if tmp is not None:
                conn.execute(f"ALTER TABLE [{tmp}] RENAME TO [{final}]")
            conn.execute(
                f"INSERT OR REPLACE INTO [{META}] (file_id, table_name, rows, columns, job_id, indexed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    file_id,
                    final,
                    meta["rows"],
                    json.dumps(meta["columns"]),
                    meta["job_id"],
                    meta["indexed_at"],
                ),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def drop(self, file_id: str, job_id: str | None = None) -> None:
        """Forget ``file_id``'s rows (its upload was terminated or expired); with
        ``job_id``, only if that job published them (a pruned job's table, not a
        newer index's). One transaction: readers see the rows or none."""
        if not self.path.exists():
            return
        conn = self.connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                meta = conn.execute(f"SELECT job_id FROM [{META}] WHERE file_id = ?", (file_id,)).fetchone()
                if job_id is None or (meta is not None and meta[0] == job_id):
                    conn.execute(f"DROP TABLE IF EXISTS [{table_name(file_id)}]")
                    conn.execute(f"DELETE FROM [{META}] WHERE file_id = ?", (file_id,))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def count(self, file_id: str) -> int:
        """Rows now in ``file_id``'s table (0 if none)."""
        conn = self.connect()
        try:
            if not _exists(conn, table_name(file_id)):
                return 0
            return int(conn.execute(f"SELECT count(*) FROM [{table_name(file_id)}]").fetchone()[0])
        finally:
            conn.close()

    def page(self, file_id: str, after: int, limit: int) -> Page | None:
        """Up to ``limit`` rows after rowid ``after``; None if the upload was never indexed."""
        db = self.connect()
        try:
            meta = db.execute(f"SELECT rows, columns FROM [{META}] WHERE file_id = ?", (file_id,)).fetchone()
            if meta is None:
                return None
            columns = [c["name"] for c in json.loads(meta[1])]
            table = table_name(file_id)
            if not columns or not _exists(db, table):
                return Page(columns=columns, rows=[], next_cursor=None, total=int(meta[0]))
            cursor = db.execute(
                f"SELECT _rowid_, * FROM [{table}] WHERE _rowid_ > ? ORDER BY _rowid_ LIMIT ?",
                (after, limit + 1),
            )
            names = [d[0] for d in cursor.description][1:]
            fetched = cursor.fetchall()
            rows = [dict(zip(names, r[1:], strict=True)) for r in fetched[:limit]]
            more = len(fetched) > limit
            next_cursor = str(fetched[limit - 1][0]) if more else None
            return Page(columns=columns, rows=rows, next_cursor=next_cursor, total=int(meta[0]))
        finally:
            db.close()


def _exists(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` exists in ``conn``'s main database."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,))
    return found.fetchone() is not None
