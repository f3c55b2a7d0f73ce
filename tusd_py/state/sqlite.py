"""SQLite :class:`StateStore` (the embedded default), on ``sqlite3``.

Layout: one database file (``<data_dir>/state.db`` by default) in WAL mode
with ``synchronous=NORMAL`` (a committed transaction survives a process
crash). Tables:

* ``uploads`` — one row per upload (columns of :mod:`tusd_py.state.codec`);
* ``parts`` — multipart parts ``(upload_id, number, etag, size)``;
* ``idempotency_keys`` — ``(owner, idem_key) → upload_id`` of ``POST /index``
  retries, until ``expires_at`` (schema version 2);
* ``uploads.checksum`` — the whole-upload digest (schema version 3);
* ``uploads.tier`` — the uploader's tier at creation (schema version 4).

The schema version lives in ``PRAGMA user_version`` and :data:`MIGRATIONS`
brings older files forward on open. Point reads and writes run on the event
loop (each touches one row and does not fsync: bounded, microseconds);
WAL checkpoints, which fsync, run in an executor on their own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from tusd_py.core import errors
from tusd_py.core.models import PartRecord, UploadInfo
from tusd_py.state import codec
from tusd_py.state.base import UPDATABLE_FIELDS
from tusd_py.state.rules import OffsetCommit


class SQLExecutor(Protocol):
    """What a migration step needs: a ``sqlite3.Connection`` (or a sqlite-utils
    ``Database``, which has the same ``execute``)."""

    def execute(self, sql: str, /) -> Any: ...


# The schema was first written with sqlite-utils' ``Table.create`` /
# ``create_index`` / ``add_column``; the steps below are the statements it
# issued (same tables, columns, types, keys and index names), run without
# loading sqlite-utils (~3 MiB of RSS with click, pluggy and dateutil).


def _v1(db: SQLExecutor) -> None:
    db.execute(
        'CREATE TABLE "uploads" (\n'
        '   "id" TEXT PRIMARY KEY,\n'
        '   "owner" TEXT NOT NULL,\n'
        '   "length" INTEGER,\n'
        '   "offset" INTEGER NOT NULL,\n'
        '   "metadata_raw" TEXT,\n'
        '   "concat" TEXT,\n'
        '   "concat_raw" TEXT,\n'
        '   "partials" TEXT,\n'
        '   "storage" TEXT,\n'
        '   "storage_meta" TEXT,\n'
        '   "state" TEXT NOT NULL,\n'
        '   "visibility" TEXT,\n'
        '   "mime" TEXT,\n'
        '   "created_at" REAL NOT NULL,\n'
        '   "updated_at" REAL NOT NULL,\n'
        '   "expires_at" REAL\n'
        ")"
    )
    db.execute('CREATE INDEX "idx_uploads_state_expires_at" ON "uploads" ("state", "expires_at");')
    db.execute('CREATE INDEX "idx_uploads_owner_created_at_id" ON "uploads" ("owner", "created_at", "id");')
    db.execute('CREATE INDEX "idx_uploads_created_at_id" ON "uploads" ("created_at", "id");')
    db.execute(
        'CREATE TABLE "parts" (\n'
        '   "upload_id" TEXT,\n'
        '   "number" INTEGER,\n'
        '   "etag" TEXT,\n'
        '   "size" INTEGER,\n'
        '   PRIMARY KEY ("upload_id", "number")\n'
        ")"
    )


def _v2(db: SQLExecutor) -> None:
    db.execute(
        'CREATE TABLE "idempotency_keys" (\n'
        '   "owner" TEXT,\n'
        '   "idem_key" TEXT,\n'
        '   "upload_id" TEXT NOT NULL,\n'
        '   "expires_at" REAL NOT NULL,\n'
        '   PRIMARY KEY ("owner", "idem_key")\n'
        ")"
    )
    db.execute('CREATE INDEX "idx_idempotency_keys_expires_at" ON "idempotency_keys" ("expires_at");')


def _v3(db: SQLExecutor) -> None:
    db.execute('ALTER TABLE "uploads" ADD COLUMN "checksum" TEXT;')


def _v4(db: SQLExecutor) -> None:
    db.execute('ALTER TABLE "uploads" ADD COLUMN "tier" TEXT;')


#: Migration i brings a database from version i to i+1.
MIGRATIONS: tuple[Callable[[SQLExecutor], None], ...] = (_v1, _v2, _v3, _v4)
SCHEMA_VERSION = len(MIGRATIONS)
_SELECT = "SELECT " + ", ".join(f'"{f}"' for f in codec.FIELDS) + " FROM uploads"
_INSERT = (
    "INSERT INTO uploads ("
    + ", ".join(f'"{f}"' for f in codec.FIELDS)
    + ") VALUES ("
    + ", ".join("?" for _ in codec.FIELDS)
    + ")"
)


@contextlib.contextmanager
def map_sqlite_errors(operation: str) -> Iterator[None]:
    """Translate ``sqlite3`` errors into :class:`errors.StateStoreError` (503), or
    :class:`errors.InsufficientStorage` (507) when the database's disk is full."""
    try:
        yield
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            raise errors.InsufficientStorage(
                f"disk full: the state database could not record {operation}; "
                "free space, then resume from HEAD's offset"
            ) from exc
        raise errors.StateStoreError(f"state store failed during {operation}: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=2000")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SQLiteStateStore:
    """Upload records in one SQLite file. Create with :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, checkpoint_interval: float) -> None:
        self._path = path
        self._conn = conn
        self._checkpoint_interval = checkpoint_interval
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, checkpoint_interval: float = 5.0) -> SQLiteStateStore:
        """Open (creating and migrating if needed) the database at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        conn = await loop.run_in_executor(None, cls._open_sync, path)
        store = cls(path, conn, checkpoint_interval)
        store._task = asyncio.create_task(store._checkpointer())
        return store

    @staticmethod
    def _open_sync(path: Path) -> sqlite3.Connection:
        with map_sqlite_errors("open"):
            conn = _connect(path)
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise errors.StateStoreError(
                        f"{path} has schema version {version}, newer than this "
                        f"tusd-py ({SCHEMA_VERSION}); upgrade tusd-py"
                    )
                for step in MIGRATIONS[version:]:
                    step(conn)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            # Checkpoints fsync; they run off the event loop (see _checkpointer).
            conn.execute("PRAGMA wal_autocheckpoint=0")
            return conn

    async def _checkpointer(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed:
            await asyncio.sleep(self._checkpoint_interval)
            with contextlib.suppress(sqlite3.Error):
                await loop.run_in_executor(None, self._checkpoint_sync)

    def _checkpoint_sync(self) -> None:
        conn = sqlite3.connect(str(self._path), isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _one(self, upload_id: str) -> UploadInfo | None:
        row = self._conn.execute(_SELECT + " WHERE id = ?", (upload_id,)).fetchone()
        return codec.from_values(row) if row is not None else None

    def _require(self, upload_id: str) -> UploadInfo:
        info = self._one(upload_id)
        if info is None:
            raise errors.UploadNotFound()
        return info

    async def create(self, info: UploadInfo) -> None:
        row = codec.to_row(info)  # in codec.FIELDS order, the order of _INSERT
        with map_sqlite_errors("create"):
            try:
                self._conn.execute(_INSERT, tuple(row.values()))
            except sqlite3.IntegrityError:
                raise ValueError(f"upload {info.id} exists") from None

    async def get(self, upload_id: str) -> UploadInfo | None:
        with map_sqlite_errors("get"):
            return self._one(upload_id)

    async def commit_offset(
        self,
        upload_id: str,
        expected: int,
        new: int,
        *,
        updated_at: float,
        expires_at: float | None,
    ) -> UploadInfo:
        commit = OffsetCommit(expected, new, updated_at, expires_at)
        sets = ", ".join(f'"{k}" = ?' for k in commit.changes)
        guards = "".join(f' AND "{k}" = ?' for k in commit.requires)
        values = [codec.encode_value(k, v) for k, v in commit.changes.items()]
        required = [codec.encode_value(k, v) for k, v in commit.requires.items()]
        with map_sqlite_errors("commit_offset"):
            # One statement: the rule's requirements are the WHERE of the update.
            cur = self._conn.execute(
                f"UPDATE uploads SET {sets} WHERE id = ?{guards}", (*values, upload_id, *required)
            )
            stored = self._one(upload_id)
        if cur.rowcount == 1 and stored is not None:
            return stored
        # Refused (or deleted right after): the rule names the error.
        raise commit.refused(stored)

    async def reset_offset(self, upload_id: str, offset: int) -> UploadInfo:
        with map_sqlite_errors("reset_offset"):
            self._conn.execute('UPDATE uploads SET "offset" = ? WHERE id = ?', (offset, upload_id))
            return self._require(upload_id)

    async def update(self, upload_id: str, changes: Mapping[str, Any]) -> UploadInfo:
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise KeyError(f"not updatable: {sorted(unknown)}")
        if not changes:
            with map_sqlite_errors("get"):
                return self._require(upload_id)
        sets = ", ".join(f'"{k}" = ?' for k in changes)
        values = tuple(codec.encode_value(k, v) for k, v in changes.items())
        with map_sqlite_errors("update"):
            self._conn.execute(f"UPDATE uploads SET {sets} WHERE id = ?", (*values, upload_id))
            return self._require(upload_id)

    async def delete(self, upload_id: str) -> None:
        with map_sqlite_errors("delete"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
                self._conn.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    async def list_expired(self, now: float, limit: int) -> Sequence[UploadInfo]:
        with map_sqlite_errors("list_expired"):
            rows = self._conn.execute(
                _SELECT + " WHERE (state = 'uploading' OR (state = 'complete' AND concat = 'partial')) "
                "AND expires_at IS NOT NULL "
                "AND expires_at < ? ORDER BY expires_at, id LIMIT ?",
                (now, limit),
            ).fetchall()
        return [codec.from_values(r) for r in rows]

    async def purge_tombstones(self, before: float, limit: int) -> int:
        with map_sqlite_errors("purge_tombstones"):
            cur = self._conn.execute(
                "DELETE FROM uploads WHERE id IN (SELECT id FROM uploads "
                "WHERE state = 'expired' AND updated_at < ? LIMIT ?)",
                (before, limit),
            )
        return cur.rowcount

    async def list_uploads(
        self,
        *,
        owner: str | None,
        after: tuple[float, str] | None,
        limit: int,
        state: str | None = None,
        visibility: str | None = None,
        include_partials: bool = True,
    ) -> Sequence[UploadInfo]:
        where: list[str] = []
        args: list[Any] = []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if after is not None:
            where.append("(created_at > ? OR (created_at = ? AND id > ?))")
            args.extend([after[0], after[0], after[1]])
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if visibility is not None:
            where.append("visibility = ?")
            args.append(visibility)
        if not include_partials:
            where.append("(concat IS NULL OR concat != 'partial')")
        sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_at, id LIMIT ?"
        args.append(limit)
        with map_sqlite_errors("list_uploads"):
            rows = self._conn.execute(sql, args).fetchall()
        return [codec.from_values(r) for r in rows]

    async def list_ids(self, after: str, limit: int) -> Sequence[str]:
        with map_sqlite_errors("list_ids"):
            rows = self._conn.execute(
                "SELECT id FROM uploads WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
            ).fetchall()
        return [str(r[0]) for r in rows]

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        with map_sqlite_errors("put_part"):
            self._conn.execute(
                "INSERT OR REPLACE INTO parts (upload_id, number, etag, size) VALUES (?, ?, ?, ?)",
                (upload_id, part.number, part.etag, part.size),
            )

    async def list_parts(self, upload_id: str) -> Sequence[PartRecord]:
        with map_sqlite_errors("list_parts"):
            rows = self._conn.execute(
                "SELECT number, etag, size FROM parts WHERE upload_id = ? ORDER BY number",
                (upload_id,),
            ).fetchall()
        return [PartRecord(int(r[0]), str(r[1]), int(r[2])) for r in rows]

    async def delete_parts(self, upload_id: str, first: int = 1) -> None:
        with map_sqlite_errors("delete_parts"):
            self._conn.execute("DELETE FROM parts WHERE upload_id = ? AND number >= ?", (upload_id, first))

    async def get_idempotency_key(self, owner: str, key: str, now: float) -> str | None:
        with map_sqlite_errors("get_idempotency_key"):
            row = self._conn.execute(
                "SELECT upload_id FROM idempotency_keys WHERE owner = ? AND idem_key = ? AND expires_at > ?",
                (owner, key, now),
            ).fetchone()
        return str(row[0]) if row is not None else None

    async def claim_idempotency_key(
        self, owner: str, key: str, upload_id: str, *, now: float, expires_at: float
    ) -> str:
        with map_sqlite_errors("claim_idempotency_key"):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO idempotency_keys (owner, idem_key, upload_id, expires_at) "
                    "VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (owner, idem_key) DO UPDATE SET upload_id = excluded.upload_id, "
                    "expires_at = excluded.expires_at WHERE idempotency_keys.expires_at <= ?",
                    (owner, key, upload_id, expires_at, now),
                )
                row = self._conn.execute(
                    "SELECT upload_id FROM idempotency_keys WHERE owner = ? AND idem_key = ?", (owner, key)
                ).fetchone()
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return str(row[0])

    async def release_idempotency_key(self, owner: str, key: str, upload_id: str) -> None:
        with map_sqlite_errors("release_idempotency_key"):
            self._conn.execute(
                "DELETE FROM idempotency_keys WHERE owner = ? AND idem_key = ? AND upload_id = ?",
                (owner, key, upload_id),
            )

    async def purge_idempotency_keys(self, now: float, limit: int) -> int:
        with map_sqlite_errors("purge_idempotency_keys"):
            cur = self._conn.execute(
                "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys "
                "WHERE expires_at <= ? LIMIT ?)",
                (now, limit),
            )
        return cur.rowcount

    async def ping(self) -> None:
        with map_sqlite_errors("ping"):
            self._conn.execute("SELECT 1").fetchone()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
