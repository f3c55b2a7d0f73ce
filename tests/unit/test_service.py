"""``UploadService`` on in-memory state and locks with local storage in a
temporary directory: create / append / commit / abort, CAS conflicts,
checksums, locks, termination, expiry and concatenation finals."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from storage.local import LocalStorage
from tusd_py.core import errors, protocol
from tusd_py.core.append import AppendRequest, AppendSession
from tusd_py.core.composer import Composer
from tusd_py.core.config import load_config
from tusd_py.core.models import ConcatKind, Principal, UploadInfo, UploadState
from tusd_py.core.service import UploadService
from tusd_py.locking.memory import MemoryLocker
from tusd_py.state.memory import MemoryStateStore

ALICE = Principal("alice")
BOB = Principal("bob")
ADMIN = Principal("root", tier="admin")
EXPIRATION = 1000.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """An EventSink keeping ``(event, id, offset, detail)``."""

    events: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    def emit(self, event: str, info: UploadInfo, detail: str | None = None) -> None:
        self.events.append((event, info.id, info.offset, detail))

    def names(self, upload_id: str) -> list[str]:
        return [e for e, i, _, _ in self.events if i == upload_id and e != "upload.progress"]


@dataclass
class Env:
    service: UploadService
    state: MemoryStateStore
    storage: LocalStorage
    clock: Clock
    events: Recorder
    root: Path

    def content(self, upload_id: str) -> bytes:
        return (self.root / "uploads" / upload_id).read_bytes()

    async def append(
        self, principal: Principal, upload_id: str, offset: int, data: bytes, **kw: object
    ) -> UploadInfo:
        session = await self.service.begin_append(
            principal,
            upload_id,
            AppendRequest(offset=offset, content_length=len(data), **kw),
            lambda: None,  # type: ignore[arg-type]
        )
        await session.write(data)
        return await session.commit()


def make_env(tmp_path: Path, max_size: int = 0, size_limit: int | None = None) -> Env:
    config = load_config(
        environ={},
        overrides={
            "server.data_dir": str(tmp_path),
            "server.expiration": EXPIRATION,
            "server.max_size": max_size,
            "server.lock_timeout": 0.3,
            "server.release_idle": 0.05,
            "server.progress_interval": 0.05,
        },
    )
    state = MemoryStateStore()
    storage = LocalStorage(tmp_path, fsync="never")
    composer = Composer(storages={"disk": storage}, state=state, locker=MemoryLocker())
    clock = Clock()
    events = Recorder()
    service = UploadService(
        config=config,
        composer=composer,
        events=events,
        clock=clock,
        size_limit=(lambda p: size_limit if p.tier != "admin" else 0) if size_limit is not None else None,
    )
    return Env(service, state, storage, clock, events, tmp_path)


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return make_env(tmp_path)


# --- creation --------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_create_records_owner_expiry_and_file(env: Env) -> None:
    info = await env.service.create(ALICE, length=10, metadata_raw="filename eC50eHQ=")
    assert protocol.is_valid_upload_id(info.id)
    assert info.owner == "alice"
    assert info.length == 10 and info.offset == 0
    assert info.expires_at == env.clock.now + EXPIRATION
    assert info.state is UploadState.UPLOADING
    assert info.filename == "x.txt"
    assert await env.state.get(info.id) == info
    assert env.content(info.id) == b""
    assert env.events.names(info.id) == ["upload.created"]


@pytest.mark.gen_test
async def test_create_records_the_uploaders_tier_for_its_jobs(env: Env) -> None:
    premium = await env.service.create(Principal("carol", tier="premium"), length=10)
    basic = await env.service.create(ALICE, length=10)
    assert premium.tier == "premium" and basic.tier == "basic"
    assert (await env.state.get(premium.id)) == premium


@pytest.mark.gen_test
async def test_zero_length_upload_is_finished_at_once(env: Env) -> None:
    info = await env.service.create(ALICE, length=0)
    assert info.is_complete and info.expires_at is None
    assert env.events.names(info.id) == ["upload.created", "upload.finished"]


@pytest.mark.gen_test
async def test_deferred_and_partial_creation(env: Env) -> None:
    info = await env.service.create(ALICE, length=None, partial=True)
    assert info.defer_length and info.concat is ConcatKind.PARTIAL and info.concat_raw == "partial"


@pytest.mark.parametrize(
    ("max_size", "tier_limit", "principal", "length", "ok"),
    [
        (100, None, ALICE, 100, True),
        (100, None, ALICE, 101, False),
        (0, 50, ALICE, 51, False),  # the principal's limit
        (0, 50, ADMIN, 10**12, True),  # admins: no tier limit, no server limit
        (100, 50, ALICE, 60, False),  # the smaller limit wins
        (40, 50, ALICE, 45, False),
    ],
)
@pytest.mark.gen_test
async def test_size_limits(
    tmp_path: Path, max_size: int, tier_limit: int | None, principal: Principal, length: int, ok: bool
) -> None:
    env = make_env(tmp_path, max_size=max_size, size_limit=tier_limit)
    if ok:
        await env.service.create(principal, length=length)
    else:
        with pytest.raises(errors.MaxSizeExceeded):
            await env.service.create(principal, length=length)
        assert await env.state.list_ids("", 10) == []


# --- appending ---------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_append_commit_and_finish(env: Env) -> None:
    info = await env.service.create(ALICE, length=6)
    env.clock.now += 10
    info = await env.append(ALICE, info.id, 0, b"abc")
    assert info.offset == 3 and not info.is_complete
    assert info.expires_at == env.clock.now + EXPIRATION  # sliding expiry
    info = await env.append(ALICE, info.id, 3, b"def")
    assert info.offset == 6 and info.is_complete and info.expires_at is None
    assert env.content(info.id) == b"abcdef"
    assert env.events.names(info.id) == ["upload.created", "upload.finished"]


@pytest.mark.gen_test
async def test_session_write_in_many_chunks(env: Env) -> None:
    info = await env.service.create(ALICE, length=1000)
    session = await env.service.begin_append(ALICE, info.id, AppendRequest(offset=0), lambda: None)
    for i in range(10):
        await session.write(bytes([i]) * 100)
    assert session.offset == 1000
    info = await session.commit()
    assert info.is_complete
    assert env.content(info.id) == b"".join(bytes([i]) * 100 for i in range(10))


@pytest.mark.gen_test
async def test_abort_keeps_what_was_written(env: Env) -> None:
    info = await env.service.create(ALICE, length=10)
    session = await env.service.begin_append(ALICE, info.id, AppendRequest(offset=0), lambda: None)
    await session.write(b"abcd")
    saved = await session.abort()
    assert saved.offset == 4
    assert (await env.state.get(info.id)).offset == 4  # type: ignore[union-attr]
    assert session.closed
    assert await session.abort() == saved  # idempotent
    with pytest.raises(errors.UploadInterrupted):
        await session.commit()
    info = await env.append(ALICE, info.id, 4, b"efghij")  # the lock was released
    assert info.is_complete and env.content(info.id) == b"abcdefghij"


@pytest.mark.gen_test
async def test_stalled_session_publishes_after_the_interval(env: Env) -> None:
    """Written bytes become visible to readers within ``progress_interval``
    even if no further chunk arrives."""
    info = await env.service.create(ALICE, length=10)
    session = await env.service.begin_append(ALICE, info.id, AppendRequest(offset=0), lambda: None)
    await session.write(b"abc")
    for _ in range(500):
        current = await env.state.get(info.id)
        if current is not None and current.offset == 3:
            break
        await asyncio.sleep(0.01)
    assert current is not None and current.offset == 3
    await session.commit()


@pytest.mark.parametrize(
    ("request_kw", "error"),
    [
        ({"offset": 1}, errors.OffsetMismatch),
        ({"offset": 0, "content_length": 11}, errors.UploadSizeExceeded),
        ({"offset": 0, "declared_length": 5}, errors.InvalidLength),  # length already known
    ],
)
@pytest.mark.gen_test
async def test_begin_append_refusals_release_the_lock(
    env: Env, request_kw: dict[str, int], error: type[errors.TusError]
) -> None:
    info = await env.service.create(ALICE, length=10)
    with pytest.raises(error):
        await env.service.begin_append(ALICE, info.id, AppendRequest(**request_kw), lambda: None)
    assert (await env.append(ALICE, info.id, 0, b"ok")).offset == 2  # not left locked


@pytest.mark.gen_test
async def test_appending_to_others_finals_and_unknowns(env: Env) -> None:
    info = await env.service.create(ALICE, length=4)
    with pytest.raises(errors.UploadNotFound):
        await env.append(BOB, info.id, 0, b"x")
    assert (await env.append(ADMIN, info.id, 0, b"ab")).offset == 2
    with pytest.raises(errors.UploadNotFound):
        await env.append(ALICE, "0" * 32, 0, b"x")
    with pytest.raises(errors.UploadNotFound):
        await env.append(ALICE, "../etc", 0, b"x")
    part = await env.service.create(ALICE, length=1, partial=True)
    final = await env.service.create_final(ALICE, partial_ids=[part.id], concat_raw="final;x")
    with pytest.raises(errors.ModifyFinal):
        await env.append(ALICE, final.id, 0, b"")


@pytest.mark.gen_test
async def test_overflowing_write_keeps_the_part_that_fits(env: Env) -> None:
    info = await env.service.create(ALICE, length=5)
    session = await env.service.begin_append(ALICE, info.id, AppendRequest(offset=0), lambda: None)
    await session.write(b"abc")
    with pytest.raises(errors.UploadSizeExceeded):
        await session.write(b"defgh")
    with pytest.raises(errors.UploadSizeExceeded):
        await session.write(b"more")  # the session stays failed
    with pytest.raises(errors.UploadSizeExceeded):
        await session.commit()  # reports the failure after saving
    current = await env.state.get(info.id)
    assert current is not None and current.offset == 5 and current.is_complete
    assert env.content(info.id) == b"abcde"


@pytest.mark.gen_test
async def test_deferred_length_declaration(env: Env) -> None:
    info = await env.service.create(ALICE, length=None)
    info = await env.append(ALICE, info.id, 0, b"ab")
    assert info.length is None
    with pytest.raises(errors.InvalidLength):
        await env.append(ALICE, info.id, 2, b"", declared_length=1)
    with pytest.raises(errors.UploadSizeExceeded):
        await env.append(ALICE, info.id, 2, b"cde", declared_length=4)
    assert (await env.state.get(info.id)).length is None  # type: ignore[union-attr]
    info = await env.append(ALICE, info.id, 2, b"cd", declared_length=4)
    assert info.length == 4 and info.is_complete


@pytest.mark.gen_test
async def test_deferred_upload_capped_by_max_size(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_size=4)
    info = await env.service.create(ALICE, length=None)
    with pytest.raises(errors.MaxSizeExceeded):
        await env.append(ALICE, info.id, 0, b"abcde")
    with pytest.raises(errors.MaxSizeExceeded):
        await env.append(ALICE, info.id, 0, b"", declared_length=5)
    assert (await env.append(ALICE, info.id, 0, b"abcd")).offset == 4


# --- checksums --------------------------------------------------------------------------------


def sha1(data: bytes) -> protocol.Checksum:
    return protocol.parse_checksum("sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode())


@pytest.mark.gen_test
async def test_checksummed_append(env: Env) -> None:
    info = await env.service.create(ALICE, length=6)
    info = await env.append(ALICE, info.id, 0, b"abc", checksum=sha1(b"abc"))
    assert info.offset == 3
    with pytest.raises(errors.ChecksumMismatch):
        await env.append(ALICE, info.id, 3, b"def", checksum=sha1(b"xyz"))
    assert (await env.state.get(info.id)).offset == 3  # type: ignore[union-attr]
    assert env.content(info.id) == b"abc"
    assert list((env.root / "staging").iterdir()) == []


@pytest.mark.gen_test
async def test_aborted_checksummed_session_keeps_nothing(env: Env) -> None:
    info = await env.service.create(ALICE, length=6)
    session = await env.service.begin_append(
        ALICE, info.id, AppendRequest(offset=0, checksum=sha1(b"abcdef")), lambda: None
    )
    await session.write(b"abcd")
    await asyncio.sleep(0.1)  # longer than progress_interval: still nothing published
    assert (await env.state.get(info.id)).offset == 0  # type: ignore[union-attr]
    saved = await session.abort()
    assert saved.offset == 0
    assert env.content(info.id) == b""
    assert list((env.root / "staging").iterdir()) == []


# --- locks and compare-and-set ------------------------------------------------------------------


@pytest.mark.gen_test
async def test_second_append_asks_the_holder_to_release(env: Env) -> None:
    info = await env.service.create(ALICE, length=6)
    first: list[AppendSession] = []

    def release() -> None:
        asyncio.ensure_future(first[0].abort())

    first.append(await env.service.begin_append(ALICE, info.id, AppendRequest(offset=0), release))
    await first[0].write(b"abc")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (await env.state.get(info.id)).offset != 3:  # type: ignore[union-attr]
        assert loop.time() < deadline, "progress not published"
        await asyncio.sleep(0.01)
    info = await env.append(ALICE, info.id, 3, b"def")  # waits for the idle holder's abort
    assert info.is_complete and env.content(info.id) == b"abcdef"
    assert first[0].closed


@pytest.mark.gen_test
async def test_append_that_will_be_refused_does_not_disturb_the_holder(env: Env) -> None:
    info = await env.service.create(ALICE, length=6)
    asked: list[bool] = []
    session = await env.service.begin_append(
        ALICE, info.id, AppendRequest(offset=0), lambda: asked.append(True)
    )
    with pytest.raises(errors.OffsetMismatch):
        await env.append(ALICE, info.id, 2, b"x")
    with pytest.raises(errors.UploadNotFound):
        await env.append(BOB, info.id, 0, b"x")
    assert asked == []
    await session.write(b"abcdef")
    assert (await session.commit()).is_complete


@pytest.mark.gen_test
async def test_holder_that_does_not_release_times_out(env: Env) -> None:
    info = await env.service.create(ALICE, length=6)
    asked: list[bool] = []
    session = await env.service.begin_append(
        ALICE, info.id, AppendRequest(offset=0), lambda: asked.append(True)
    )
    with pytest.raises(errors.LockTimeout) as raised:
        await env.append(ALICE, info.id, 0, b"x")
    assert asked == [True]
    assert "Retry-After" in raised.value.headers
    with pytest.raises(errors.LockTimeout):
        await env.service.terminate(ALICE, info.id)
    await session.commit()
    await env.service.terminate(ALICE, info.id)


@pytest.mark.gen_test
async def test_cas_conflict_never_overwrites_or_rewinds(env: Env) -> None:
    """A writer that bypassed the lock moved the offset: the session's
    publication fails with 409 instead of overwriting it."""
    info = await env.service.create(ALICE, length=10)
    session = await env.service.begin_append(ALICE, info.id, AppendRequest(offset=0), lambda: None)
    await env.state.commit_offset(info.id, 0, 5, updated_at=0.0, expires_at=None)  # the rogue writer
    await session.write(b"abc")
    with pytest.raises(errors.OffsetMismatch):
        await session.commit()
    assert (await env.state.get(info.id)).offset == 5  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        await env.state.commit_offset(info.id, 5, 4, updated_at=0.0, expires_at=None)


@pytest.mark.gen_test
async def test_concurrent_cas_exactly_one_wins(env: Env) -> None:
    info = await env.service.create(ALICE, length=10)
    results = await asyncio.gather(
        *(env.state.commit_offset(info.id, 0, n, updated_at=0.0, expires_at=None) for n in (3, 4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, UploadInfo) for r in results) == 1
    assert sum(isinstance(r, errors.OffsetMismatch) for r in results) == 1


@pytest.mark.gen_test
async def test_offset_reconciled_from_storage_before_append(env: Env) -> None:
    """The storage is the truth for bytes (e.g. a crash after a write, before
    its offset was published): the next PATCH must resume from it."""
    info = await env.service.create(ALICE, length=6)
    (env.root / "uploads" / info.id).write_bytes(b"abcd")
    with pytest.raises(errors.OffsetMismatch):
        await env.append(ALICE, info.id, 0, b"x")
    assert (await env.state.get(info.id)).offset == 4  # type: ignore[union-attr]
    info = await env.append(ALICE, info.id, 4, b"ef")
    assert info.is_complete and env.content(info.id) == b"abcdef"


# --- lookups, termination, expiry -------------------------------------------------------------------


@pytest.mark.gen_test
async def test_get_is_owner_scoped(env: Env) -> None:
    info = await env.service.create(ALICE, length=1)
    assert (await env.service.get(ALICE, info.id)).id == info.id
    assert (await env.service.get(ADMIN, info.id)).id == info.id
    for principal, upload_id in ((BOB, info.id), (ALICE, "f" * 32), (ALICE, "nope")):
        with pytest.raises(errors.UploadNotFound):
            await env.service.get(principal, upload_id)


@pytest.mark.gen_test
async def test_terminate(env: Env) -> None:
    info = await env.service.create(ALICE, length=3)
    await env.append(ALICE, info.id, 0, b"ab")
    with pytest.raises(errors.UploadNotFound):
        await env.service.terminate(BOB, info.id)
    await env.service.terminate(ALICE, info.id)
    assert await env.state.get(info.id) is None
    assert not (env.root / "uploads" / info.id).exists()
    assert env.events.names(info.id)[-1] == "upload.terminated"
    with pytest.raises(errors.UploadNotFound):
        await env.service.terminate(ALICE, info.id)


@pytest.mark.gen_test
async def test_expiry_410_then_sweep_then_forgotten(env: Env) -> None:
    old = await env.service.create(ALICE, length=3)
    await env.append(ALICE, old.id, 0, b"a")
    done = await env.service.create(ALICE, length=1)
    await env.append(ALICE, done.id, 0, b"z")
    env.clock.now += EXPIRATION + 1
    with pytest.raises(errors.UploadGone):
        await env.service.get(ALICE, old.id)  # before any sweep
    with pytest.raises(errors.UploadGone):
        await env.append(ALICE, old.id, 1, b"b")
    assert await env.service.sweep_expired() == 1
    assert not (env.root / "uploads" / old.id).exists()
    assert (await env.state.get(old.id)).state is UploadState.EXPIRED  # type: ignore[union-attr]
    assert "upload.expired" in env.events.names(old.id)
    assert (await env.service.get(ALICE, done.id)).is_complete
    env.clock.now += env.service.config.server.tombstone_ttl + 1
    await env.service.sweep_expired()
    with pytest.raises(errors.UploadNotFound):
        await env.service.get(ALICE, old.id)


@pytest.mark.gen_test
async def test_sweep_skips_uploads_being_written(env: Env) -> None:
    info = await env.service.create(ALICE, length=3)
    session = await env.service.begin_append(ALICE, info.id, AppendRequest(offset=0), lambda: None)
    env.clock.now += EXPIRATION + 1
    assert await env.service.sweep_expired() == 0
    await session.write(b"abc")
    info = await session.commit()
    assert info.is_complete
    assert await env.service.sweep_expired() == 0


# --- concatenation --------------------------------------------------------------------------------


async def partial(env: Env, data: bytes, principal: Principal = ALICE) -> UploadInfo:
    info = await env.service.create(principal, length=len(data), partial=True)
    if data:
        info = await env.append(principal, info.id, 0, data)
    return info


@pytest.mark.gen_test
async def test_final_of_finished_partials(env: Env) -> None:
    a, b = await partial(env, b"hello "), await partial(env, b"world")
    final = await env.service.create_final(ALICE, partial_ids=[a.id, b.id, a.id], concat_raw="final;...")
    assert final.is_complete and final.length == final.offset == 17
    assert env.content(final.id) == b"hello worldhello "
    assert env.content(a.id) == b"hello "  # partials are kept
    assert final.partials == (a.id, b.id, a.id)
    assert final.concat_raw == "final;..."
    assert env.events.names(final.id) == ["upload.created", "upload.finished"]


@pytest.mark.gen_test
async def test_unfinished_final_assembled_on_get(env: Env) -> None:
    a = await env.service.create(ALICE, length=None, partial=True)
    b = await partial(env, b"xy")
    final = await env.service.create_final(ALICE, partial_ids=[a.id, b.id], concat_raw="final;x")
    assert not final.is_complete and final.length is None
    assert (await env.service.get(ALICE, final.id)).length is None
    await env.append(ALICE, a.id, 0, b"ab", declared_length=3)
    assert (await env.service.get(ALICE, final.id)).length == 5
    await env.append(ALICE, a.id, 2, b"c")
    final = await env.service.get(ALICE, final.id)
    assert final.is_complete and final.offset == 5
    assert env.content(final.id) == b"abcxy"


@pytest.mark.gen_test
async def test_final_refusals(tmp_path: Path) -> None:
    env = make_env(tmp_path, max_size=5)
    plain = await env.service.create(ALICE, length=1)
    a = await partial(env, b"abc")
    bobs = await partial(env, b"b", BOB)
    cases: list[tuple[list[str], type[errors.TusError]]] = [
        ([plain.id], errors.InvalidConcat),
        (["f" * 32], errors.UploadNotFound),
        ([bobs.id], errors.UploadNotFound),
        ([a.id, a.id], errors.MaxSizeExceeded),
    ]
    for ids, error in cases:
        with pytest.raises(error):
            await env.service.create_final(ALICE, partial_ids=ids, concat_raw="final;")
    assert len(await env.state.list_ids("", 100)) == 3  # nothing created


# --- content inspection -------------------------------------------------------------------------


class Inspector:
    def __init__(self, verdict: str | None, refuse: bool = False) -> None:
        self.verdict, self.refuse = verdict, refuse
        self.seen: list[bytes] = []

    async def inspect(self, info: UploadInfo, head: bytes) -> str | None:
        self.seen.append(head)
        if self.refuse:
            raise errors.UnsupportedMediaType("no executables")
        return self.verdict


@pytest.mark.gen_test
async def test_inspector_records_mime(env: Env) -> None:
    inspector = Inspector("image/png")
    env.service.inspector = inspector
    info = await env.service.create(ALICE, length=6)
    info = await env.append(ALICE, info.id, 0, b"\x89PNG")
    info = await env.append(ALICE, info.id, 4, b"..")
    assert info.mime == "image/png"
    assert inspector.seen == [b"\x89PNG"]  # only the first bytes, once


@pytest.mark.gen_test
async def test_inspector_refusal_terminates_the_upload(env: Env) -> None:
    env.service.inspector = Inspector(None, refuse=True)
    info = await env.service.create(ALICE, length=6)
    with pytest.raises(errors.UnsupportedMediaType):
        await env.append(ALICE, info.id, 0, b"MZ\x90\x00")
    assert await env.state.get(info.id) is None
    assert not (env.root / "uploads" / info.id).exists()
    assert env.events.names(info.id)[-1] == "upload.failed"
