"""``S3Writer`` as a :class:`storage.base.MetaChanging` writer: the switch to
S3 waits for the caller to save the new ``storage_meta``.

The writer's local half is a real :class:`LocalWriter`; its storage (the S3
side) is an in-memory fake recording the calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from storage.base import MetaChanging
from storage.local import LocalStorage
from storage.s3_writer import S3Writer
from tusd_py.core import errors
from tusd_py.core.models import UploadInfo

THRESHOLD = 10


class FakePipeline:
    tail_key = None
    closed = False

    def __init__(self) -> None:
        self.data = b""

    def attach(self) -> None:
        pass

    def detach(self) -> None:
        pass

    async def write(self, chunk: bytes) -> None:
        self.data += chunk


class FakeHost:
    threshold = THRESHOLD
    stall = 1.0

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.pipeline = FakePipeline()

    async def prepare_switch(self, info: UploadInfo, offset: int) -> Mapping[str, str]:
        self.calls.append(("prepare", offset))
        return {"phase": "s3", "upload_id": "m1"}

    async def adopt_switch(self, info: UploadInfo, offset: int) -> FakePipeline:
        self.calls.append(("adopt", dict(info.storage_meta), offset))
        return self.pipeline

    async def release_pipeline(self, pipeline: FakePipeline) -> None:
        self.calls.append(("release", None))


async def _writer(tmp_path: Path, host: FakeHost) -> S3Writer:
    local = LocalStorage(tmp_path)
    info = UploadInfo(id="a" * 32, owner="", length=None, storage="s3", storage_meta={"phase": "local"})
    await local.create(info)
    return S3Writer(host, info, await local.open_writer(info), None)  # type: ignore[arg-type]


@pytest.mark.gen_test
async def test_the_switch_waits_for_the_meta_to_be_saved(tmp_path: Path) -> None:
    host = FakeHost()
    writer = await _writer(tmp_path, host)
    assert isinstance(writer, MetaChanging)
    await writer.write(b"0123456789")  # at the threshold: still local
    assert writer.pending_meta() is None
    await writer.write(b"ab")  # past it: prepared, not adopted
    assert writer.pending_meta() == {"phase": "s3", "upload_id": "m1"}
    assert host.calls == [("prepare", 12)]
    with pytest.raises(errors.StorageError, match="not saved"):
        await writer.write(b"c")
    await writer.meta_saved()
    assert writer.pending_meta() is None
    assert host.calls[1] == ("adopt", {"phase": "s3", "upload_id": "m1"}, 12)
    await writer.write(b"cd")
    assert host.pipeline.data == b"cd"
    assert await writer.close() == 14
    assert (tmp_path / "uploads" / ("a" * 32)).read_bytes() == b"0123456789ab"  # the fake adopts nothing


@pytest.mark.gen_test
async def test_closing_with_a_switch_pending_keeps_the_local_bytes(tmp_path: Path) -> None:
    host = FakeHost()
    writer = await _writer(tmp_path, host)
    await writer.write(b"x" * 12)
    assert writer.pending_meta() is not None
    assert await writer.close() == 12
    assert [c[0] for c in host.calls] == ["prepare"]  # nothing adopted, nothing undone
    assert (tmp_path / "uploads" / ("a" * 32)).read_bytes() == b"x" * 12
