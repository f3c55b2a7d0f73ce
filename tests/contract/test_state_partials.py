"""State-store contract for partial uploads (issue 12.5: complete partials
keep an expiry the sweeper finds, listings can leave partials out) and the
whole-upload checksum field (issue 12.7)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from tusd_py.core import protocol
from tusd_py.core.models import ConcatKind, UploadInfo, UploadState
from tusd_py.state import codec
from tusd_py.state.base import StateStore
from tusd_py.state.sqlite import MIGRATIONS, SQLiteStateStore

T0 = 1_700_000_000.0


def make(*, created_at: float = T0, expires_at: float | None = T0 + 10, partial: bool = False) -> UploadInfo:
    return UploadInfo(
        id=protocol.new_upload_id(),
        owner="alice",
        length=10,
        concat=ConcatKind.PARTIAL if partial else ConcatKind.NONE,
        concat_raw="partial" if partial else "",
        created_at=created_at,
        updated_at=created_at,
        expires_at=expires_at,
    )


@pytest.mark.gen_test
async def test_complete_partials_with_an_expiry_are_listed_as_expired(store: StateStore) -> None:
    part = make(partial=True, expires_at=T0 + 20)
    whole = make(expires_at=T0 + 10)
    running = make(expires_at=T0 + 30)
    for info in (part, whole, running):
        await store.create(info)
    await store.update(part.id, {"state": UploadState.COMPLETE})
    await store.update(whole.id, {"state": UploadState.COMPLETE})
    assert [i.id for i in await store.list_expired(T0 + 100, 10)] == [part.id, running.id]
    await store.update(part.id, {"expires_at": T0 + 500})
    assert [i.id for i in await store.list_expired(T0 + 100, 10)] == [running.id]
    await store.update(part.id, {"expires_at": T0 + 50})
    assert [i.id for i in await store.list_expired(T0 + 100, 10)] == [running.id, part.id]
    await store.update(part.id, {"state": UploadState.EXPIRED, "expires_at": None})
    assert [i.id for i in await store.list_expired(T0 + 100, 10)] == [running.id]


@pytest.mark.gen_test
async def test_listing_can_leave_partials_out_and_pages_stay_full(store: StateStore) -> None:
    rows = [make(created_at=T0 + n, partial=n % 3 != 0) for n in range(12)]
    for info in rows:
        await store.create(info)
    wholes = [i.id for i in rows if i.concat is ConcatKind.NONE]
    everything = await store.list_uploads(owner="alice", after=None, limit=100)
    assert [i.id for i in everything] == [i.id for i in rows]
    seen: list[str] = []
    after: tuple[float, str] | None = None
    for _ in range(10):
        page = await store.list_uploads(owner=None, after=after, limit=2, include_partials=False)
        if not page:
            break
        assert len(page) == 2 or len(seen) + len(page) == len(wholes)
        seen += [i.id for i in page]
        after = (page[-1].created_at, page[-1].id)
    assert seen == wholes


@pytest.mark.gen_test
async def test_the_whole_upload_checksum_round_trips(store: StateStore) -> None:
    """Issue 12.7: the server-computed digest is a field of the record."""
    info = make()
    await store.create(info)
    got = await store.get(info.id)
    assert got is not None and got.checksum is None
    updated = await store.update(info.id, {"state": UploadState.COMPLETE, "checksum": "sha256:ab12"})
    assert updated.checksum == "sha256:ab12"
    again = await store.get(info.id)
    assert again is not None and again.checksum == "sha256:ab12"
    listed = await store.list_uploads(owner="alice", after=None, limit=10)
    assert [i.checksum for i in listed] == ["sha256:ab12"]


@pytest.mark.gen_test
async def test_sqlite_file_of_schema_2_is_migrated(tmp_path: Path) -> None:
    """A state.db written before the checksum column keeps its records."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(str(path))
    db = sqlite_utils.Database(conn)
    for step in MIGRATIONS[:2]:
        step(db)
    row = {name: value for name, value in codec.to_row(make()).items() if name not in ("checksum", "tier")}
    db.table("uploads").insert(row)
    conn.execute("PRAGMA user_version=2")
    conn.commit()
    conn.close()
    store = await SQLiteStateStore.open(path)
    try:
        got = await store.get(str(row["id"]))
        assert got is not None and got.checksum is None and got.tier == "basic"
        assert (await store.update(got.id, {"checksum": "md5:00"})).checksum == "md5:00"
    finally:
        await store.close()
