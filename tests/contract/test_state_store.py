"""The one :class:`StateStore` contract every implementation passes
(memory, SQLite, Redis — see ``backends.STATE_BACKENDS``)."""

from __future__ import annotations

import asyncio

import pytest

from tests.contract.backends import StateBackend
from tusd_py.core import errors, protocol
from tusd_py.core.models import ConcatKind, PartRecord, UploadInfo, UploadState
from tusd_py.state.base import StateStore

T0 = 1_700_000_000.123456


def make(
    *,
    owner: str = "alice",
    created_at: float = T0,
    upload_id: str | None = None,
    expires_at: float | None = T0 + 3600,
    **kw: object,
) -> UploadInfo:
    return UploadInfo(
        id=upload_id or protocol.new_upload_id(),
        owner=owner,
        length=kw.pop("length", 100),  # type: ignore[arg-type]
        created_at=created_at,
        updated_at=created_at,
        expires_at=expires_at,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.gen_test
async def test_create_then_get_round_trips_every_field(store: StateStore) -> None:
    info = make(
        length=None,
        metadata_raw="filename aGVsbG8udHh0,empty",
        concat=ConcatKind.FINAL,
        concat_raw="final;/files/a /files/b",
        partials=("a" * 32, "b" * 32),
        storage="s3",
        storage_meta={"upload_id": "xyz", "key": "k/ä"},
        visibility="public",
        mime="text/plain",
        expires_at=T0 + 0.000123,
        tier="premium",
    )
    await store.create(info)
    assert await store.get(info.id) == info
    plain = make(mime=None, expires_at=None, metadata_raw="")
    await store.create(plain)
    assert await store.get(plain.id) == plain


@pytest.mark.gen_test
async def test_create_refuses_an_existing_id_and_get_unknown_is_none(store: StateStore) -> None:
    info = make()
    await store.create(info)
    with pytest.raises(ValueError):
        await store.create(info.replace(owner="mallory"))
    assert (await store.get(info.id)) == info
    assert await store.get(protocol.new_upload_id()) is None


@pytest.mark.gen_test
async def test_commit_offset_is_a_compare_and_set(store: StateStore) -> None:
    info = make()
    await store.create(info)
    got = await store.commit_offset(info.id, 0, 40, updated_at=T0 + 1, expires_at=T0 + 99)
    assert (got.offset, got.updated_at, got.expires_at) == (40, T0 + 1, T0 + 99)
    assert await store.get(info.id) == got
    with pytest.raises(errors.OffsetMismatch):
        await store.commit_offset(info.id, 0, 50, updated_at=T0 + 2, expires_at=None)
    same = await store.commit_offset(info.id, 40, 40, updated_at=T0 + 3, expires_at=None)
    assert (same.offset, same.expires_at) == (40, None)
    with pytest.raises(ValueError):
        await store.commit_offset(info.id, 40, 39, updated_at=T0 + 4, expires_at=None)
    with pytest.raises(errors.UploadNotFound):
        await store.commit_offset(protocol.new_upload_id(), 0, 1, updated_at=T0, expires_at=None)
    assert (await store.get(info.id)).offset == 40  # type: ignore[union-attr]


@pytest.mark.gen_test
async def test_commit_offset_refusals_are_the_same_everywhere_and_change_nothing(store: StateStore) -> None:
    """Each rule of ``state.rules.OffsetCommit``, on every backend: the same
    exception with the same message, and the record left as it was."""
    info = make()
    await store.create(info)
    before = await store.commit_offset(info.id, 0, 40, updated_at=T0 + 1, expires_at=T0 + 99)
    # a stale expected offset below the stored one (a commit below the current offset)
    with pytest.raises(errors.OffsetMismatch, match="^offset is 40, expected 0$"):
        await store.commit_offset(info.id, 0, 30, updated_at=T0 + 2, expires_at=None)
    # an expected offset ahead of the stored one
    with pytest.raises(errors.OffsetMismatch, match="^offset is 40, expected 50$"):
        await store.commit_offset(info.id, 50, 60, updated_at=T0 + 3, expires_at=None)
    # backwards is refused before the store is read, even for an unknown id
    with pytest.raises(ValueError, match="never moves backwards"):
        await store.commit_offset(protocol.new_upload_id(), 40, 39, updated_at=T0 + 4, expires_at=None)
    with pytest.raises(ValueError, match="never moves backwards"):
        await store.commit_offset(info.id, 40, 0, updated_at=T0 + 4, expires_at=None)
    assert await store.get(info.id) == before
    await store.delete(info.id)
    with pytest.raises(errors.UploadNotFound):
        await store.commit_offset(info.id, 40, 41, updated_at=T0 + 5, expires_at=None)


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_compare_and_set_has_exactly_one_winner(state_backend: StateBackend) -> None:
    views = [await state_backend.open() for _ in range(4)]
    for round_ in range(5):
        info = make()
        await views[0].create(info)

        async def attempt(i: int, upload_id: str = info.id) -> int:
            view = views[i % len(views)]
            await view.commit_offset(upload_id, 0, 10 + i, updated_at=T0 + i, expires_at=None)
            return 10 + i

        results = await asyncio.gather(*(attempt(i) for i in range(8)), return_exceptions=True)
        winners = [r for r in results if isinstance(r, int)]
        losers = [r for r in results if isinstance(r, errors.OffsetMismatch)]
        assert len(winners) == 1 and len(losers) == 7, (round_, results)
        for view in views:
            assert (await view.get(info.id)).offset == winners[0]  # type: ignore[union-attr]


@pytest.mark.gen_test
async def test_reset_offset_sets_unconditionally(store: StateStore) -> None:
    info = make()
    await store.create(info)
    await store.commit_offset(info.id, 0, 80, updated_at=T0, expires_at=T0 + 5)
    assert (await store.reset_offset(info.id, 30)).offset == 30
    assert (await store.reset_offset(info.id, 60)).offset == 60
    assert (await store.get(info.id)).offset == 60  # type: ignore[union-attr]
    with pytest.raises(errors.UploadNotFound):
        await store.reset_offset(protocol.new_upload_id(), 1)


@pytest.mark.gen_test
async def test_update_changes_only_updatable_fields(store: StateStore) -> None:
    info = make(length=None)
    await store.create(info)
    got = await store.update(
        info.id,
        {"length": 500, "mime": "image/png", "storage_meta": {"a": "1"}, "visibility": "public"},
    )
    assert (got.length, got.mime, dict(got.storage_meta), got.visibility) == (
        500,
        "image/png",
        {"a": "1"},
        "public",
    )
    got = await store.update(info.id, {"mime": None, "expires_at": None, "state": UploadState.COMPLETE})
    assert (got.mime, got.expires_at, got.state) == (None, None, UploadState.COMPLETE)
    assert await store.get(info.id) == got
    assert await store.update(info.id, {}) == got
    for forbidden in ("offset", "owner", "id", "created_at"):
        with pytest.raises(KeyError):
            await store.update(info.id, {forbidden: 1})
    with pytest.raises(errors.UploadNotFound):
        await store.update(protocol.new_upload_id(), {"mime": "x/y"})


@pytest.mark.gen_test
async def test_delete_removes_record_and_parts(store: StateStore) -> None:
    info = make()
    await store.create(info)
    await store.put_part(info.id, PartRecord(1, "etag-1", 5 << 20))
    await store.delete(info.id)
    assert await store.get(info.id) is None
    assert list(await store.list_parts(info.id)) == []
    assert info.id not in await store.list_ids("", 1000)
    assert info.id not in [i.id for i in await store.list_uploads(owner=None, after=None, limit=1000)]
    assert info.id not in [i.id for i in await store.list_expired(T0 + 10**9, 1000)]
    await store.delete(info.id)  # missing: not an error
    await store.create(info)  # the id is free again
    assert await store.get(info.id) == info


@pytest.mark.gen_test
async def test_list_expired_returns_overdue_incomplete_uploads_in_order(store: StateStore) -> None:
    late = make(expires_at=T0 + 30)
    early = make(expires_at=T0 + 10)
    future = make(expires_at=T0 + 1000)
    never = make(expires_at=None)
    done = make(expires_at=T0 + 5)
    for info in (late, early, future, never, done):
        await store.create(info)
    await store.update(done.id, {"state": UploadState.COMPLETE})
    got = await store.list_expired(T0 + 100, 10)
    assert [i.id for i in got] == [early.id, late.id]
    assert [i.id for i in await store.list_expired(T0 + 100, 1)] == [early.id]
    assert list(await store.list_expired(T0 + 10, 10)) == []  # strictly before now
    await store.commit_offset(early.id, 0, 1, updated_at=T0 + 50, expires_at=T0 + 5000)
    assert [i.id for i in await store.list_expired(T0 + 100, 10)] == [late.id]
    await store.update(late.id, {"state": UploadState.EXPIRED, "expires_at": None})
    assert list(await store.list_expired(T0 + 100, 10)) == []


@pytest.mark.gen_test
async def test_purge_tombstones_deletes_old_expired_records_only(store: StateStore) -> None:
    infos = [make() for _ in range(4)]
    for info in infos:
        await store.create(info)
    for n, info in enumerate(infos[:3]):
        await store.update(info.id, {"state": UploadState.EXPIRED, "updated_at": T0 + n, "expires_at": None})
    # infos[2] was updated at T0+2: too recent; infos[3] is not a tombstone.
    assert await store.purge_tombstones(T0 + 1.5, 1) == 1
    assert await store.purge_tombstones(T0 + 1.5, 10) == 1
    assert await store.purge_tombstones(T0 + 1.5, 10) == 0
    remaining = {i.id for i in infos if await store.get(i.id) is not None}
    assert remaining == {infos[2].id, infos[3].id}
    tomb = await store.get(infos[2].id)
    assert tomb is not None and tomb.state is UploadState.EXPIRED


@pytest.mark.gen_test
async def test_list_uploads_orders_by_created_at_then_id_and_filters(store: StateStore) -> None:
    tie = T0 + 5
    infos = [
        make(owner="alice", created_at=T0 + 3),
        make(owner="bob", created_at=T0 + 1),
        make(owner="alice", created_at=tie, upload_id="b" * 32),
        make(owner="alice", created_at=tie, upload_id="a" * 32, visibility="public"),
        make(owner="alice", created_at=T0 + 0.000001),
    ]
    for info in infos:
        await store.create(info)
    await store.update(infos[0].id, {"state": UploadState.COMPLETE})
    expected = sorted(infos, key=lambda i: (i.created_at, i.id))
    everyone = await store.list_uploads(owner=None, after=None, limit=100)
    assert [i.id for i in everyone] == [i.id for i in expected]
    alice = await store.list_uploads(owner="alice", after=None, limit=100)
    assert [i.id for i in alice] == [i.id for i in expected if i.owner == "alice"]
    assert list(await store.list_uploads(owner="carol", after=None, limit=100)) == []
    after_tie = await store.list_uploads(owner="alice", after=(tie, "a" * 32), limit=100)
    assert [i.id for i in after_tie] == ["b" * 32]
    done = await store.list_uploads(owner="alice", after=None, limit=100, state="complete")
    assert [i.id for i in done] == [infos[0].id]
    public = await store.list_uploads(owner=None, after=None, limit=100, visibility="public")
    assert [i.id for i in public] == ["a" * 32]
    uploading = await store.list_uploads(owner="alice", after=None, limit=2, state="uploading")
    assert [i.id for i in uploading] == [infos[4].id, "a" * 32]


@pytest.mark.gen_test(timeout=30)
async def test_list_uploads_pages_are_stable_under_concurrent_inserts(store: StateStore) -> None:
    for n in range(25):
        await store.create(make(owner="alice", created_at=T0 + n // 3))  # ties of three
    seen: list[str] = []
    after: tuple[float, str] | None = None
    for page_no in range(100):
        page = await store.list_uploads(owner="alice", after=after, limit=4)
        if not page:
            break
        seen += [i.id for i in page]
        last = page[-1]
        after = (last.created_at, last.id)
        # Inserts behind and ahead of the cursor while paging.
        await store.create(make(owner="alice", created_at=T0 - 1 - page_no))
        await store.create(make(owner="alice", created_at=T0 + 100 + page_no))
    assert len(seen) == len(set(seen))
    everyone = [i.id for i in await store.list_uploads(owner="alice", after=None, limit=1000)]
    assert seen == [i for i in everyone if i in set(seen)]
    assert len(seen) >= 25


@pytest.mark.gen_test
async def test_list_ids_walks_ids_in_order(store: StateStore) -> None:
    ids = sorted(protocol.new_upload_id() for _ in range(7))
    for upload_id in reversed(ids):
        await store.create(make(upload_id=upload_id))
    assert list(await store.list_ids("", 100)) == ids
    assert list(await store.list_ids("", 3)) == ids[:3]
    assert list(await store.list_ids(ids[2], 3)) == ids[3:6]
    assert list(await store.list_ids(ids[-1], 3)) == []


@pytest.mark.gen_test
async def test_parts_are_recorded_replaced_listed_and_forgotten(store: StateStore) -> None:
    info = make()
    await store.create(info)
    for number in (3, 1, 2, 10):
        await store.put_part(info.id, PartRecord(number, f"e{number}", number * 100))
    await store.put_part(info.id, PartRecord(2, "e2-again", 222))
    assert list(await store.list_parts(info.id)) == [
        PartRecord(1, "e1", 100),
        PartRecord(2, "e2-again", 222),
        PartRecord(3, "e3", 300),
        PartRecord(10, "e10", 1000),
    ]
    other = make()
    await store.create(other)
    assert list(await store.list_parts(other.id)) == []
    await store.delete_parts(info.id, first=3)
    assert [p.number for p in await store.list_parts(info.id)] == [1, 2]
    await store.delete_parts(info.id, first=11)
    assert [p.number for p in await store.list_parts(info.id)] == [1, 2]
    await store.delete_parts(info.id)
    assert list(await store.list_parts(info.id)) == []
    await store.delete_parts(info.id, first=2)
    assert list(await store.list_parts(info.id)) == []
    assert await store.get(info.id) == info


@pytest.mark.gen_test
async def test_views_share_records(state_backend: StateBackend) -> None:
    first, second = await state_backend.open(), await state_backend.open()
    info = make()
    await first.create(info)
    await second.commit_offset(info.id, 0, 7, updated_at=T0 + 1, expires_at=T0 + 2)
    await second.put_part(info.id, PartRecord(1, "e", 7))
    got = await first.get(info.id)
    assert got is not None and got.offset == 7
    assert list(await first.list_parts(info.id)) == [PartRecord(1, "e", 7)]
    await first.delete(info.id)
    assert await second.get(info.id) is None


@pytest.mark.gen_test
async def test_ping_and_close(state_backend: StateBackend) -> None:
    store = await state_backend.open()
    await store.ping()
    await store.close()
    await store.close()  # idempotent
