"""The storage configurations the storage contract suite runs against.

A :class:`StorageSpec` names one configuration (``local``, ``s3``,
``s3-tail``) and where its shared parts live (data dir, SQLite file, moto
endpoint and bucket). It is plain data, so a second process
(:mod:`tests.contract.storage_peer`) builds the very same backend from it.
:func:`build_storage` is the only place a storage is constructed.

:class:`Harness` drives a storage through the :mod:`storage.base` interfaces
and keeps the upload record in a real SQLite state store the way the service
does: it saves every ``storage_meta`` a storage returns, commits the offset a
writer reports, and passes the record it holds to the next call. The same
store is the S3 parts ledger (state stores implement
:class:`storage.base.PartsLedger`).

:class:`SocketBody` is a request body arriving on a real socket (a
``socketpair``); :meth:`Harness.splice` drives a writer's zero-copy steps
(:class:`tusd_py.core.splice.SpliceWriter`) over it the way
:mod:`handlers.zerocopy` and the append session do.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from storage.base import BoundedProgress, ChunkWriter, MetaChanging, Storage, Terminatable
from storage.local import LocalStorage
from tests.integration import s3_support as s3t
from tusd_py.core import protocol
from tusd_py.core.config import Config, load_config
from tusd_py.core.models import ConcatKind, UploadInfo, UploadState
from tusd_py.core.splice import SpliceWriter
from tusd_py.state.sqlite import SQLiteStateStore

KIB = 1 << 10
MIB = 1 << 20
#: S3 part size: moto refuses smaller non-last parts, like S3.
PART = 5 * MIB
#: Uploads longer than this start in S3; shorter ones (and deferred-length
#: ones until they pass it) are kept on disk by ``S3Storage``.
S3_THRESHOLD = 64 * KIB
#: Bytes per ``ChunkWriter.write`` (a request body arrives in such pieces).
CHUNK = 32 * KIB

KINDS = ("local", "s3", "s3-tail")
#: Seconds :func:`publishable` waits for parts to reach the bucket.
SETTLE_LIMIT = 30.0
#: Splice step bounds of :meth:`Harness.splice` (seconds): generous, so that
#: one step takes all a steady sender sends (part boundaries inside a step).
STEP_BUDGET = 2.0
STEP_GRACE = 0.5
#: Seconds without a byte after which :meth:`Harness.splice` takes the body as cut.
BODY_IDLE = 10.0


class SocketBody:
    """Body bytes sent from a thread into a real socket pair; :attr:`sock`
    (the receiving end, non-blocking as Tornado leaves it) is what a writer
    splices from. ``close`` both ends."""

    def __init__(self) -> None:
        self._client, self._server = socket.socketpair()
        self._server.setblocking(False)
        self._client.settimeout(BODY_IDLE)

    @property
    def sock(self) -> socket.socket:
        return self._server

    async def send(self, data: bytes, *, then_fin: bool = False) -> None:
        """Send ``data`` (returns once the receiver took it in); ``then_fin``:
        then end the body (the client went away)."""
        await asyncio.to_thread(self._send, data, then_fin)

    def _send(self, data: bytes, then_fin: bool) -> None:
        self._client.sendall(data)
        if then_fin:
            self._client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._client.close()
        self._server.close()


@dataclass
class Spliced:
    """What :meth:`Harness.splice` did with one body."""

    #: Bytes read from the socket (spliced + copied).
    taken: int = 0
    spliced: int = 0
    copied: int = 0
    #: ``(start, end)`` of the stored bytes of each splice step, in body offsets.
    steps: list[tuple[int, int]] = field(default_factory=list)
    #: The body ended before ``count`` bytes (the client went away).
    cut: bool = False
    error: OSError | None = None


@dataclass(frozen=True)
class StorageSpec:
    """One storage configuration; JSON-able (see :meth:`to_json`)."""

    kind: str
    data_dir: str
    sqlite_path: str
    endpoint: str = ""
    bucket: str = ""

    @property
    def shares_without_data_dir(self) -> bool:
        """Whether instances with their own data dirs share uploads (the
        bucket and the ledger hold everything: ``s3.tail_in_bucket``)."""
        return self.kind == "s3-tail"

    def config(self) -> Config:
        settings: dict[str, Any] = {"server.data_dir": self.data_dir}
        if self.kind != "local":
            settings.update(
                s3t.overrides(
                    self.endpoint,
                    self.bucket,
                    threshold=S3_THRESHOLD,
                    part_size=PART,
                    min_part_size=PART,
                    tail_in_bucket=self.kind == "s3-tail",
                )
            )
        return load_config(environ={}, overrides=settings)

    def with_data_dir(self, data_dir: Path) -> StorageSpec:
        return replace(self, data_dir=str(data_dir))

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def build_storage(spec: StorageSpec, ledger: SQLiteStateStore) -> Storage:
    """The storage of ``spec`` with ``ledger`` as its shared parts ledger
    (the one constructor call of the suite)."""
    config = spec.config()
    if spec.kind == "local":
        return LocalStorage(config.data_dir, config.local.fsync)
    from storage.s3 import S3Storage

    return S3Storage(config, ledger)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def publishable(writer: ChunkWriter, written: int, at_least: int = 0) -> int:
    """How many of the ``written`` bytes of ``writer``'s request may be
    published now: ``BoundedProgress.publishable()`` once it reaches
    ``at_least`` (parts upload in the background; polled for at most
    :data:`SETTLE_LIMIT` seconds), every written byte for other writers."""
    if not isinstance(writer, BoundedProgress):
        return written
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_LIMIT
    while writer.publishable() < at_least and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return writer.publishable()


async def _readable(fd: int, timeout: float) -> bool:
    """Wait until ``fd`` is readable (data or its end); False after ``timeout``."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


class Harness:
    """One instance of a storage plus the upload records it serves (see the
    module docstring). ``open`` it; ``close`` releases both."""

    def __init__(self, spec: StorageSpec, store: SQLiteStateStore, storage: Storage) -> None:
        self.spec = spec
        self.store = store
        self.storage = storage

    @classmethod
    async def open(cls, spec: StorageSpec) -> Harness:
        Path(spec.data_dir).mkdir(parents=True, exist_ok=True)
        store = await SQLiteStateStore.open(Path(spec.sqlite_path))
        return cls(spec, store, build_storage(spec, store))

    async def close(self) -> None:
        await self.storage.close()
        await self.store.close()

    # --- the service's side of each call --------------------------------------------

    async def create(
        self,
        length: int | None,
        concat: ConcatKind = ConcatKind.NONE,
        partials: Sequence[str] = (),
    ) -> UploadInfo:
        now = time.time()
        info = UploadInfo(
            id=protocol.new_upload_id(),
            owner="contract",
            length=length,
            concat=concat,
            partials=tuple(partials),
            storage=self.storage.name,
            created_at=now,
            updated_at=now,
        )
        meta = await self.storage.create(info)
        info = info.replace(storage_meta=dict(meta))
        await self.store.create(info)
        return info

    async def load(self, upload_id: str) -> UploadInfo:
        info = await self.store.get(upload_id)
        assert info is not None, f"no record for {upload_id}"
        return info

    async def write(
        self, writer: ChunkWriter, data: bytes, chunk: int = CHUNK, *, upload_id: str | None = None
    ) -> None:
        """Write ``data`` in ``chunk``-sized pieces; a ``storage_meta`` change the
        writer announces (:class:`storage.base.MetaChanging`) is saved to the
        record before the next piece, as the append session does."""
        for start in range(0, len(data), chunk):
            await writer.write(data[start : start + chunk])
            if isinstance(writer, MetaChanging) and (meta := writer.pending_meta()) is not None:
                assert upload_id is not None, "a writer changed storage_meta: pass upload_id"
                await self.store.update(upload_id, {"storage_meta": dict(meta)})
                await writer.meta_saved()

    async def splice(
        self, writer: ChunkWriter, body: SocketBody, count: int, *, upload_id: str | None = None
    ) -> Spliced:
        """Take ``count`` body bytes from ``body`` into ``writer`` as a server
        does: splice steps while the writer can splice (waiting for the socket
        to be readable between steps), then the copying path (:meth:`write`,
        which saves a ``storage_meta`` change) for what is left. Stops early
        at the body's end or a file error."""
        loop = asyncio.get_running_loop()
        done = Spliced()
        fd = body.sock.fileno()
        while done.taken < count and isinstance(writer, SpliceWriter) and writer.can_splice:
            step = await writer.splice_from(fd, count - done.taken, budget=STEP_BUDGET, grace=STEP_GRACE)
            # A writer never asks for a meta change inside a splice step (the
            # append session saves changes on the copying path only).
            assert not isinstance(writer, MetaChanging) or writer.pending_meta() is None
            done.steps.append((done.taken, done.taken + step.stored))
            done.taken += step.taken
            done.spliced += step.stored
            if step.error is not None or step.eof:
                done.error, done.cut = step.error, step.eof
                return done
            if done.taken < count and not await _readable(fd, BODY_IDLE):
                done.cut = True
                return done
        while done.taken < count:
            data = await asyncio.wait_for(
                loop.sock_recv(body.sock, min(CHUNK, count - done.taken)), BODY_IDLE
            )
            if not data:
                done.cut = True
                break
            await self.write(writer, data, upload_id=upload_id)
            done.taken += len(data)
            done.copied += len(data)
        return done

    async def commit(self, info: UploadInfo, written: int) -> UploadInfo:
        """Publish ``written`` more bytes; returns the record as stored."""
        # A switch to S3 inside the writer changed ``storage_meta``; :meth:`write`
        # saved it, so the stored record returned here carries it.
        return await self.store.commit_offset(
            info.id, info.offset, info.offset + written, updated_at=time.time(), expires_at=None
        )

    async def append(self, info: UploadInfo, data: bytes) -> UploadInfo:
        """One PATCH: ``data`` written at ``info.offset``, writer closed, offset committed."""
        writer = await self.storage.open_writer(info)
        try:
            await self.write(writer, data, upload_id=info.id)
        finally:
            written = await writer.close()
        assert written == len(data)
        return await self.commit(info, written)

    async def reconcile(self, info: UploadInfo) -> UploadInfo:
        """The record's offset set to what the storage holds (as HEAD does after a crash)."""
        held = await self.storage.durable_offset(info)
        return info if held == info.offset else await self.store.reset_offset(info.id, held)

    async def finish(self, info: UploadInfo) -> UploadInfo:
        assert info.length is not None and info.offset == info.length
        meta = await self.storage.finish(info)
        return await self.store.update(
            info.id, {"state": UploadState.COMPLETE, "storage_meta": dict(meta), "updated_at": time.time()}
        )

    async def upload(self, data: bytes, concat: ConcatKind = ConcatKind.NONE) -> UploadInfo:
        """A complete upload of ``data`` (one PATCH)."""
        info = await self.create(len(data), concat)
        if data:
            info = await self.append(info, data)
        return await self.finish(info)

    async def read(self, info: UploadInfo, start: int = 0, end: int | None = None) -> bytes:
        assert info.length is not None
        last = info.length - 1 if end is None else end
        return b"".join([block async for block in self.storage.read(info, start, last)])

    async def terminate(self, info: UploadInfo) -> None:
        assert isinstance(self.storage, Terminatable)
        await self.storage.terminate(info)

    # --- what the backend keeps, seen from outside -----------------------------------

    async def leftovers(self, upload_id: str) -> list[str]:
        """Everything still stored for ``upload_id``: files in the data dir,
        recorded parts, objects and multipart uploads in the bucket."""
        root = Path(self.spec.data_dir)
        found = [str(p.relative_to(root)) for p in root.rglob(f"{upload_id}*")]
        found += [f"part {p.number}" for p in await self.store.list_parts(upload_id)]
        if self.spec.kind != "local":
            boto = s3t.client(self.spec.endpoint)
            listed = boto.list_objects_v2(Bucket=self.spec.bucket, Prefix=upload_id)
            found += [f"object {o['Key']}" for o in listed.get("Contents", [])]
            uploads = s3t.multipart_uploads(self.spec.endpoint, self.spec.bucket)
            found += [f"multipart {u['Key']}" for u in uploads if u["Key"].startswith(upload_id)]
        return found
