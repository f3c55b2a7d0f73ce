"""The façade methods handlers use instead of the backends (issue 13):
``tus_extensions``, ``list_uploads``, ``download_url``, ``read`` and
``set_metadata`` of :class:`~tusd_py.core.service.UploadService`, on the real
SQLite state store and local storage in a temporary directory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.local import LocalStorage
from tusd_py.core import errors, protocol
from tusd_py.core.append import AppendRequest
from tusd_py.core.composer import Composer
from tusd_py.core.config import load_config
from tusd_py.core.models import Principal, UploadInfo
from tusd_py.core.service import UploadService
from tusd_py.locking.memory import MemoryLocker
from tusd_py.state.sqlite import SQLiteStateStore

ALICE = Principal("alice")
BOB = Principal("bob")
ADMIN = Principal("root", tier="admin")


class Clock:
    """Advances one second per reading, so creation times order the records."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@dataclass
class Env:
    service: UploadService
    composer: Composer

    async def upload(self, principal: Principal, data: bytes, **kw: object) -> UploadInfo:
        """A complete upload of ``data`` by ``principal`` (created, appended, finished)."""
        info = await self.service.create(principal, length=len(data), **kw)  # type: ignore[arg-type]
        if data:
            session = await self.service.begin_append(
                principal, info.id, AppendRequest(offset=0, content_length=len(data)), lambda: None
            )
            await session.write(data)
            info = await session.commit()
        return info


@contextlib.asynccontextmanager
async def open_env(tmp_path: Path) -> AsyncIterator[Env]:
    """A service on a fresh SQLite store and local storage under ``tmp_path``."""
    config = load_config(environ={}, overrides={"server.data_dir": str(tmp_path), "server.lock_timeout": 0.3})
    state = await SQLiteStateStore.open(tmp_path / "state.db")
    composer = Composer(
        storages={"disk": LocalStorage(tmp_path, fsync="never")}, state=state, locker=MemoryLocker()
    )
    try:
        yield Env(UploadService(config=config, composer=composer, clock=Clock()), composer)
    finally:
        await composer.close()


async def _collect(blocks: AsyncIterator[bytes]) -> bytes:
    return b"".join([block async for block in blocks])


@pytest.mark.gen_test
async def test_tus_extensions_are_what_local_storage_offers(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        extensions = env.service.tus_extensions()
        assert extensions[:2] == ["creation", "creation-with-upload"]
        for name in ("creation-defer-length", "expiration", "checksum", "termination", "concatenation"):
            assert name in extensions


# --- listing ----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_list_uploads_shows_a_user_only_their_own_and_an_admin_all(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        a1 = await env.upload(ALICE, b"a1")
        b1 = await env.upload(BOB, b"b1")
        a2 = await env.service.create(ALICE, length=5)
        assert [i.id for i in await env.service.list_uploads(ALICE, after=None, limit=10)] == [a1.id, a2.id]
        assert [i.id for i in await env.service.list_uploads(BOB, after=None, limit=10)] == [b1.id]
        everyone = await env.service.list_uploads(ADMIN, after=None, limit=10)
        assert [i.id for i in everyone] == [a1.id, b1.id, a2.id]


@pytest.mark.gen_test
async def test_list_uploads_pages_and_filters(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        done = await env.upload(ALICE, b"done", visibility="public")
        open_ = await env.service.create(ALICE, length=5)
        first = await env.service.list_uploads(ALICE, after=None, limit=1)
        assert [i.id for i in first] == [done.id]
        after = (first[0].created_at, first[0].id)
        assert [i.id for i in await env.service.list_uploads(ALICE, after=after, limit=5)] == [open_.id]
        assert [
            i.id for i in await env.service.list_uploads(ALICE, after=None, limit=5, state="complete")
        ] == [done.id]
        public = await env.service.list_uploads(ALICE, after=None, limit=5, visibility="public")
        assert [i.id for i in public] == [done.id]


@pytest.mark.gen_test
async def test_list_uploads_hides_partials_unless_asked(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        whole = await env.upload(ALICE, b"whole")
        part = await env.service.create(ALICE, length=3, partial=True)
        assert [i.id for i in await env.service.list_uploads(ALICE, after=None, limit=5)] == [whole.id]
        listed = await env.service.list_uploads(ALICE, after=None, limit=5, include_partials=True)
        assert [i.id for i in listed] == [whole.id, part.id]


# --- reading ----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_read_streams_the_asked_range_of_a_complete_upload(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        info = await env.upload(ALICE, b"0123456789")
        assert await _collect(env.service.read(info, 0, 9)) == b"0123456789"
        assert await _collect(env.service.read(info, 3, 5)) == b"345"
        assert await _collect(env.service.read(info, 9, 9)) == b"9"


@pytest.mark.gen_test
async def test_read_refuses_before_a_byte_an_incomplete_upload_or_a_range_outside(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        unfinished = await env.service.create(ALICE, length=10)
        with pytest.raises(errors.UploadIncomplete, match=r"0 of 10 bytes"):
            env.service.read(unfinished, 0, 9)
        deferred = await env.service.create(ALICE, length=None)
        with pytest.raises(errors.UploadIncomplete, match=r"0 of \? bytes"):
            env.service.read(deferred, 0, 0)
        info = await env.upload(ALICE, b"0123")
        for start, end in ((0, 4), (3, 2), (-1, 2)):
            with pytest.raises(errors.RangeNotSatisfiable) as caught:
                env.service.read(info, start, end)
            assert caught.value.headers == {"Content-Range": "bytes */4"}


@pytest.mark.gen_test
async def test_local_storage_hands_out_no_download_url(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        info = await env.upload(ALICE, b"bytes")
        assert await env.service.download_url(info) is None


# --- metadata named after creation ------------------------------------------------------


@pytest.mark.gen_test
async def test_set_metadata_replaces_the_metadata_of_an_unfinished_upload(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        info = await env.service.create(
            ALICE, length=None, metadata_raw=protocol.encode_metadata({"a": b"1"})
        )
        changed = await env.service.set_metadata(
            ALICE, info.id, {"filename": b"r.csv", "filetype": b"text/csv"}
        )
        assert changed.filename == "r.csv"
        assert protocol.parse_metadata(changed.metadata_raw) == {
            "filename": b"r.csv",
            "filetype": b"text/csv",
        }
        assert await env.service.get(ALICE, info.id) == changed
        assert (await env.service.set_metadata(ADMIN, info.id, {"filename": b"s"})).filename == "s"


@pytest.mark.gen_test
async def test_set_metadata_keeps_what_a_running_append_published(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        info = await env.service.create(ALICE, length=None)
        session = await env.service.begin_append(
            ALICE, info.id, AppendRequest(offset=0, content_length=6), lambda: None
        )
        await session.write(b"abc")
        await env.service.set_metadata(ALICE, info.id, {"filename": b"late.bin"})
        await session.write(b"def")
        done = await session.commit()
        assert done.offset == 6 and done.filename == "late.bin"


@pytest.mark.gen_test
async def test_set_metadata_refuses_others_uploads_and_finished_ones(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        info = await env.service.create(ALICE, length=None)
        with pytest.raises(errors.UploadNotFound):
            await env.service.set_metadata(BOB, info.id, {"filename": b"x"})
        with pytest.raises(errors.UploadNotFound):
            await env.service.set_metadata(ALICE, "0" * 32, {"filename": b"x"})
        done = await env.upload(ALICE, b"xyz")
        with pytest.raises(errors.UploadCompleted):
            await env.service.set_metadata(ALICE, done.id, {"filename": b"x"})
        assert (await env.service.get(ALICE, done.id)).metadata_raw == ""
