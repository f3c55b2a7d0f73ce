"""HEAD's catch-up (:func:`tusd_py.core.recovery.catch_up`): a record behind
its storage moves up to the stored bytes; a storage that may wait on a network
is given at most ``CATCH_UP_WAIT``, one answering from the host needs no timer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from storage.base import Capability
from storage.local import LocalStorage
from tusd_py.core import recovery
from tusd_py.core.composer import Composer
from tusd_py.core.models import UploadInfo
from tusd_py.locking.memory import MemoryLocker
from tusd_py.state.memory import MemoryStateStore


class RemoteLike(LocalStorage):
    """Local files, but without ``HOST_OFFSET`` (like S3); ``hang`` makes
    ``durable_offset`` never answer."""

    capabilities = LocalStorage.capabilities - {Capability.HOST_OFFSET}

    def __init__(self, root: Path, hang: bool) -> None:
        super().__init__(root, fsync="never")
        self.hang = hang

    async def durable_offset(self, info: UploadInfo) -> int:
        if self.hang:
            await asyncio.Event().wait()
        return await super().durable_offset(info)


async def behind(storage: LocalStorage) -> tuple[Composer, UploadInfo]:
    """An upload whose record says 0 bytes while its file holds 5."""
    state = MemoryStateStore()
    composer = Composer(storages={"disk": storage}, state=state, locker=MemoryLocker())
    info = UploadInfo(id="a" * 32, owner="alice", length=10, created_at=time.time(), updated_at=time.time())
    info = info.replace(storage_meta=await storage.create(info))
    await state.create(info)
    Path(storage.file_name(info.id)).write_bytes(b"12345")
    return composer, info


@pytest.mark.parametrize("storage_kind", ["host", "remote"])
@pytest.mark.gen_test
async def test_record_behind_its_storage_moves_up(tmp_path: Path, storage_kind: str) -> None:
    storage = (
        LocalStorage(tmp_path, fsync="never") if storage_kind == "host" else RemoteLike(tmp_path, hang=False)
    )
    composer, info = await behind(storage)
    caught = await recovery.catch_up(composer, info)
    assert caught.offset == 5
    stored = await composer.state.get(info.id)
    assert stored is not None and stored.offset == 5


@pytest.mark.gen_test(timeout=10)
async def test_a_storage_not_answering_holds_head_at_most_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recovery, "CATCH_UP_WAIT", 0.05)
    composer, info = await behind(RemoteLike(tmp_path, hang=True))
    started = time.monotonic()
    caught = await recovery.catch_up(composer, info)
    assert caught == info  # answered as it was, not moved, not raised
    assert time.monotonic() - started < 5  # the wait, not the test's timeout
