"""``storage.local``: per-upload files, writers, reads, concatenation, error mapping."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from storage import local
from storage.base import (
    CAPABILITY_PROTOCOLS,
    ContentServer,
    Storage,
)
from storage.local import LocalStorage, LocalWriter, map_os_errors
from tusd_py.core import errors, protocol
from tusd_py.core.models import UploadInfo


def upload(length: int | None = 10, offset: int = 0) -> UploadInfo:
    return UploadInfo(id=protocol.new_upload_id(), owner="u", length=length, offset=offset)


@pytest.fixture(params=["never", "on_complete", "every_patch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path, fsync=request.param)


def test_declares_and_implements_its_capabilities(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    assert isinstance(store, Storage)
    for capability in store.capabilities:
        proto = CAPABILITY_PROTOCOLS.get(capability)
        if proto is not None:
            assert isinstance(store, proto)
    assert not isinstance(store, ContentServer)  # local files stream through the server


@pytest.mark.gen_test
async def test_create_write_read(store: LocalStorage) -> None:
    info = upload()
    assert await store.create(info) == {}
    assert (store.root / info.id).read_bytes() == b""
    assert await store.durable_offset(info) == 0
    writer = await store.open_writer(info)
    await writer.write(b"hello ")
    await writer.write(memoryview(b"world").tobytes())
    assert await writer.close() == 11
    assert await writer.close() == 11  # idempotent
    with pytest.raises(errors.StorageError):
        await writer.write(b"late")
    assert await store.durable_offset(info) == 11
    info = info.replace(offset=11, length=11)
    assert await store.finish(info) == {}
    assert b"".join([b async for b in store.read(info, 0, 10)]) == b"hello world"
    assert b"".join([b async for b in store.read(info, 6, 8)]) == b"wor"


@pytest.mark.gen_test
async def test_writer_appends_at_the_offset(store: LocalStorage) -> None:
    info = upload()
    await store.create(info)
    (store.root / info.id).write_bytes(b"abcXX")  # bytes past the offset are overwritten
    writer = await store.open_writer(info.replace(offset=3))
    await writer.write(b"def")
    await writer.close()
    assert (store.root / info.id).read_bytes() == b"abcdef"


@pytest.mark.gen_test
async def test_create_twice_fails(store: LocalStorage) -> None:
    info = upload()
    await store.create(info)
    with pytest.raises(errors.StorageError):
        await store.create(info)


@pytest.mark.parametrize("bad", ["", "..", "../state.db", "A" * 32, "0" * 31, "/etc/passwd", "0" * 32 + "/x"])
@pytest.mark.gen_test
async def test_ids_are_validated_before_any_path_is_built(tmp_path: Path, bad: str) -> None:
    store = LocalStorage(tmp_path)
    info = UploadInfo(id=bad, owner="u", length=1)
    with pytest.raises(errors.UploadNotFound):
        store.path(bad)
    with pytest.raises(errors.UploadNotFound):
        await store.create(info)
    with pytest.raises(errors.UploadNotFound):
        await store.terminate(info)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uploads"]


@pytest.mark.gen_test
async def test_missing_file_and_terminate(store: LocalStorage) -> None:
    info = upload()
    assert await store.durable_offset(info) == 0
    await store.terminate(info)  # unknown data is not an error
    await store.create(info)
    await store.terminate(info)
    assert not (store.root / info.id).exists()


@pytest.mark.gen_test
async def test_read_of_a_short_file_is_a_storage_error(store: LocalStorage) -> None:
    info = upload(length=10)
    await store.create(info)
    (store.root / info.id).write_bytes(b"abc")
    with pytest.raises(errors.StorageError):
        _ = [b async for b in store.read(info, 0, 9)]


@pytest.mark.gen_test
async def test_read_crosses_blocks(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    data = os.urandom(local.READ_BLOCK * 2 + 123)
    info = upload(length=len(data))
    await store.create(info)
    (store.root / info.id).write_bytes(data)
    blocks = [b async for b in store.read(info, 5, len(data) - 1)]
    assert all(len(b) <= local.READ_BLOCK for b in blocks)
    assert b"".join(blocks) == data[5:]


@pytest.mark.gen_test
async def test_concatenate_in_order_with_repeats_and_empties(store: LocalStorage) -> None:
    parts = []
    for data in (b"one ", b"", b"two ", b"three"):
        info = upload(length=len(data))
        await store.create(info)
        (store.root / info.id).write_bytes(data)
        parts.append(info)
    final = upload(length=None)
    await store.create(final)
    assert await store.concatenate(final, [parts[0], parts[1], parts[2], parts[3], parts[0]]) == {}
    assert (store.root / final.id).read_bytes() == b"one two threeone "
    assert (store.root / parts[0].id).read_bytes() == b"one "  # sources untouched


@pytest.mark.gen_test
async def test_concatenate_falls_back_to_sendfile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Filesystems without copy_file_range (EXDEV, ENOSYS...) use sendfile."""

    def unsupported(*args: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", unsupported)
    store = LocalStorage(tmp_path)
    a, b = upload(3), upload(3)
    for info, data in ((a, b"abc"), (b, b"def")):
        await store.create(info)
        (store.root / info.id).write_bytes(data)
    final = upload(None)
    await store.concatenate(final, [a, b])
    assert (store.root / final.id).read_bytes() == b"abcdef"


@pytest.mark.gen_test
async def test_concatenate_of_a_missing_partial_is_a_storage_error(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    with pytest.raises(errors.StorageError):
        await store.concatenate(upload(None), [upload(3)])


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (errno.ENOSPC, errors.InsufficientStorage),
        (errno.EDQUOT, errors.InsufficientStorage),
        (errno.EIO, errors.StorageError),
        (errno.EACCES, errors.StorageError),
    ],
)
def test_os_errors_are_translated(code: int, error: type[errors.TusError]) -> None:
    with pytest.raises(error) as raised, map_os_errors("write"):
        raise OSError(code, os.strerror(code))
    assert type(raised.value) is error
    assert "write" in raised.value.message


@pytest.mark.gen_test
async def test_full_disk_while_writing_is_507() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    writer = LocalWriter(fd, fsync=False)
    with pytest.raises(errors.InsufficientStorage):
        await writer.write(b"x" * 10)
    assert await writer.close() == 0


@pytest.mark.gen_test
async def test_ping(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    await store.ping()
    store.root.rmdir()
    with pytest.raises(errors.StorageError):
        await store.ping()
    await store.close()


@pytest.mark.gen_test
async def test_declare_length_keeps_meta(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path)
    info = upload(None).replace(storage_meta={"k": "v"})
    assert await store.declare_length(info, 5) == {"k": "v"}
