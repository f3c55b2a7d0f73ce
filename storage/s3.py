"""``S3Storage``: uploads relayed to S3 as multipart parts while they arrive.

Phases of an upload (``storage_meta["phase"]``):

* ``local`` — bytes in ``<data_dir>/uploads/<id>`` exactly as the local
  backend keeps them. Deferred-length uploads and finals of a concatenation
  start here; one that completes at or under ``s3.threshold`` stays local.
* ``s3`` — a multipart upload is open (``key``, ``upload_id`` and the
  :class:`~storage.parts.PartPlan` are in ``storage_meta``); bytes go through
  the :class:`~storage.s3_pipeline.MultipartPipeline`. Known lengths above
  the threshold start here; a local upload switches when its offset passes
  the threshold (its file is cut into spool parts, then deleted).
* ``complete`` — the object ``<prefix><id>`` exists.

Bucket layout: ``<prefix><id>`` (the object; multipart uploads use this key),
``<prefix><id>.part`` (the unfinished last part, tail-in-bucket mode only).
Local layout: ``<data_dir>/uploads/<id>`` (local phase),
``<data_dir>/s3spool/<id>/`` (spool, see :mod:`storage.spool`).

Every boto3 call runs in this storage's thread pool (:class:`AsyncS3`).

Offsets: :meth:`S3Storage.durable_offset` is computed from facts every
process sharing the deployment sees (the parts ledger, the spool files in the
data dir, or the bucket), never from a pipeline in this process's memory. A
pipeline exists only while the lock holder writes or finishes the upload, and
is stopped before the lock is released (see :mod:`storage.s3_pipeline`), so
exactly one process uploads a spooled part.

Tail-in-bucket mode (``s3.tail_in_bucket``, instances without a shared data
dir): the bucket plus the parts ledger are the truth for every instance, so
offsets are computed from them only (the spool is a per-request cache),
offsets published while a body streams are bounded by what is in the bucket
(:meth:`storage.s3_writer.S3Writer.publishable`), every request loads the upload
from the bucket (another instance may have continued it), and an
upload holding more than was published can be rewound to the published
offset (:meth:`S3Storage.rewind`), so a client resuming from HEAD's offset on
any instance is never refused.

The upload record is the service's: this backend receives it current and
returns the ``storage_meta`` to save (the switch to S3 through
:class:`~storage.base.MetaChanging`, concatenation in two steps); it keeps
only its parts ledger (:class:`~storage.base.PartsLedger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

from storage.base import Capability, Leftover, PartsLedger
from storage.local import SPLICE_THREADS, LocalStorage, map_os_errors
from storage.parts import PartPlan, scan
from storage.s3_client import AsyncS3, S3Client, build_client
from storage.s3_concat import Assembler, Source
from storage.s3_pipeline import MultipartPipeline
from storage.s3_writer import S3Writer
from storage.spool import PartSpool, copy_range
from tusd_py.core import errors, protocol
from tusd_py.core.config import Config
from tusd_py.core.models import ConcatKind, UploadInfo, UploadState

log = logging.getLogger("tusd_py.storage")

#: Seconds a lock holder waits, when it stops its pipeline, for parts already
#: being sent to S3 (capped by ``s3.timeout``): past it they are cancelled and
#: left in the spool for the next holder, so the lock is handed over promptly.
DRAIN_MAX = 5.0

LOCAL = "local"
S3 = "s3"
COMPLETE = "complete"
#: A final upload whose multipart upload is being assembled (see :meth:`S3Storage.begin_concatenate`).
ASSEMBLING = "assembling"


class S3Storage:
    """The S3 relay backend (see module docstring)."""

    name: ClassVar[str] = "s3"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TERMINATE,
            Capability.CONCATENATE,
            Capability.DECLARE_LENGTH,
            Capability.SERVE_CONTENT,
        }
    )

    def __init__(self, config: Config, ledger: PartsLedger, client: S3Client | None = None) -> None:
        cfg = config.s3
        self.config = cfg
        self.bucket = cfg.bucket
        self.prefix = cfg.prefix
        self.threshold = cfg.threshold
        #: The parts ledger (see :class:`storage.base.PartsLedger`).
        self._ledger = ledger
        #: How long a stopping pipeline waits for the parts it is sending.
        self._drain = min(cfg.timeout, DRAIN_MAX)
        #: How long a flush waits for a part upload to end (then 503 with
        #: Retry-After): one S3 call's timeout, so a request finishing an upload
        #: never waits on S3 much longer than ``server.network_timeout``.
        self.stall = cfg.timeout
        self._fsync = config.local.fsync == "every_patch"
        self._local = LocalStorage(config.data_dir, config.local.fsync)
        self._spool_root = Path(config.data_dir) / "s3spool"
        self._executor = ThreadPoolExecutor(max_workers=cfg.concurrency + 4, thread_name_prefix="tusd-s3")
        self.s3 = AsyncS3(
            client or build_client(cfg),
            cfg.bucket,
            self._executor,
            None if client else build_client(cfg, quick=True),
        )
        self._pipelines: dict[str, MultipartPipeline] = {}
        self._slots = asyncio.Semaphore(cfg.concurrency)
        #: Splice steps into part spools (zero-copy appends, :mod:`storage.s3_splice`).
        self.splicer: Executor = ThreadPoolExecutor(SPLICE_THREADS, thread_name_prefix="tusd-s3-splice")

    # --- naming ------------------------------------------------------------------

    def key(self, upload_id: str) -> str:
        """The object key of ``upload_id``."""
        return f"{self.prefix}{upload_id}"

    def tail_key(self, upload_id: str) -> str | None:
        return f"{self.key(upload_id)}.part" if self.config.tail_in_bucket else None

    def spool(self, upload_id: str) -> PartSpool:
        if not protocol.is_valid_upload_id(upload_id):
            raise errors.UploadNotFound()
        return PartSpool(self._spool_root / upload_id, self.config.spool_parts)

    def _plan(self, length: int | None) -> PartPlan:
        c = self.config
        try:
            return PartPlan.for_length(length, c.part_size, c.min_part_size, c.max_parts)
        except ValueError as exc:
            raise errors.MaxSizeExceeded(f"upload too large for S3: {exc}") from None

    @staticmethod
    def phase(info: UploadInfo) -> str:
        return info.storage_meta.get("phase", LOCAL)

    # --- pipelines -----------------------------------------------------------------

    async def _open_pipeline(self, info: UploadInfo, adopt_spool: bool = False) -> MultipartPipeline:
        """A pipeline for the lock holder, loaded from the ledger and the spool
        or bucket (``adopt_spool``: see :meth:`MultipartPipeline.load`). A
        pipeline of this process still running for the upload belongs to a
        holder that lost its lock: it is stopped first (its writer fails)."""
        stale = self._pipelines.pop(info.id, None)
        if stale is not None:
            log.warning("stopping a stale S3 pipeline of %s", info.id, extra={"upload_id": info.id})
            await stale.stop(self._drain)
        meta = info.storage_meta
        pipeline = await MultipartPipeline.load(
            s3=self.s3,
            ledger=self._ledger,
            upload_id=info.id,
            key=meta["key"],
            multipart_id=meta["upload_id"],
            plan=PartPlan.from_meta(meta),
            spool=self.spool(info.id),
            slots=self._slots,
            tail_key=self.tail_key(info.id),
            adopt_spool=adopt_spool,
        )
        self._pipelines[info.id] = pipeline
        return pipeline

    async def release_pipeline(self, pipeline: MultipartPipeline) -> None:
        """Stop ``pipeline`` (its holder is about to release the lock): parts
        being sent get :attr:`_drain` seconds, the rest stay in the spool."""
        if self._pipelines.get(pipeline.upload_id) is pipeline:
            del self._pipelines[pipeline.upload_id]
        await pipeline.stop(self._drain, fsync=self._fsync and pipeline.tail_key is None)

    async def _discard_pipeline(self, upload_id: str) -> None:
        pipeline = self._pipelines.pop(upload_id, None)
        if pipeline is not None:
            await pipeline.stop()

    def pipeline_of(self, upload_id: str) -> MultipartPipeline | None:
        """The live pipeline of ``upload_id`` in this process (tests, metrics)."""
        return self._pipelines.get(upload_id)

    # --- Storage core ----------------------------------------------------------------

    async def create(self, info: UploadInfo) -> Mapping[str, str]:
        if info.concat is ConcatKind.FINAL or info.length is None or info.length <= self.threshold:
            await self._local.create(info)
            return {"phase": LOCAL}
        plan = self._plan(info.length)
        key = self.key(info.id)
        multipart_id = await self.s3.create_multipart(key)
        return {"phase": S3, "key": key, "upload_id": multipart_id, **plan.to_meta()}

    async def prepare_switch(self, info: UploadInfo, offset: int) -> Mapping[str, str]:
        """First half of moving a local-phase upload of ``offset`` bytes into
        a new multipart upload: its file is cut into spool parts (kernel
        copies) and left in place. Returns the ``storage_meta`` the caller
        must save before :meth:`adopt_switch` (see :class:`storage.base.MetaChanging`)."""
        if self.phase(info) != LOCAL:
            raise errors.StorageError(f"upload {info.id} is not stored locally")
        plan = self._plan(info.length)
        key = self.key(info.id)
        spool = self.spool(info.id)
        spool.destroy()
        multipart_id = await self.s3.create_multipart(key)
        source = self._local.path(info.id)
        loop = asyncio.get_running_loop()
        number = 1
        with map_os_errors("switch to S3"):
            spool.directory.mkdir(parents=True, exist_ok=True)
            while plan.part_start(number) < offset:
                start = plan.part_start(number)
                length = min(plan.part_size(number), offset - start)
                await loop.run_in_executor(None, copy_range, source, spool.path(number), start, length)
                number += 1
        await self._ledger.delete_parts(info.id)
        return {"phase": S3, "key": key, "upload_id": multipart_id, **plan.to_meta()}

    async def adopt_switch(self, info: UploadInfo, offset: int) -> MultipartPipeline:
        """Second half, once ``info`` (carrying the new meta) is saved: the
        local file is deleted and the spool adopted. Returns the pipeline."""
        with map_os_errors("switch to S3"), contextlib.suppress(FileNotFoundError):
            os.unlink(self._local.path(info.id))
        pipeline = await self._open_pipeline(info, adopt_spool=True)
        if pipeline.offset != offset:
            await self.release_pipeline(pipeline)
            raise errors.StorageError(f"switching {info.id} to S3 kept {pipeline.offset} of {offset} bytes")
        return pipeline

    async def open_writer(self, info: UploadInfo) -> S3Writer:
        if self.phase(info) == LOCAL:
            local = await self._local.open_writer(info)
            return S3Writer(self, info, local, None)
        if self.phase(info) != S3:
            raise errors.StorageError(f"upload {info.id} is already stored")
        pipeline = await self._open_pipeline(info)
        if pipeline.offset != info.offset:
            await self.release_pipeline(pipeline)
            raise errors.OffsetMismatch(
                f"storage holds {pipeline.offset} bytes of upload {info.id}, not {info.offset}; "
                "send HEAD to resume from the right offset"
            )
        pipeline.attach()
        return S3Writer(self, info, None, pipeline)

    async def durable_offset(self, info: UploadInfo) -> int:
        phase = self.phase(info)
        if phase == COMPLETE or info.state is UploadState.COMPLETE:
            return info.offset
        if phase == LOCAL:
            return await self._local.durable_offset(info)
        tail = self.tail_key(info.id)
        plan = PartPlan.from_meta(info.storage_meta)
        recorded = {p.number: p for p in await self._ledger.list_parts(info.id)}
        if tail is None:
            return scan(plan, recorded, self.spool(info.id).existing()).offset
        # Tail in the bucket: only what every instance can read counts.
        base = scan(plan, recorded, {}).offset
        found = await self.s3.head(tail)
        if found is not None and base < plan.capacity:
            number, inside = plan.locate(base)
            size, meta = found
            if inside == 0 and meta.get("part") == str(number) and size < plan.part_size(number):
                return base + size
        return base

    async def rewind(self, info: UploadInfo, offset: int) -> bool:
        """Make an upload that holds more than ``offset`` bytes hold exactly
        ``offset`` (caller holds the lock); True on success.

        Tail-in-bucket mode only, and only for offsets this storage publishes
        (see :meth:`storage.s3_writer.S3Writer.publishable`): a part boundary, or the end of the
        ``.part`` object. This happens when an instance died after a part was
        recorded but before the request published the offset: the client
        resumes from the published offset, so the parts from there on are
        forgotten (re-uploading a part number replaces it in S3) and a
        ``.part`` object past a part boundary deleted. False (nothing changed
        in the bucket) when ``offset`` is not such a point.
        """
        tail = self.tail_key(info.id)
        if tail is None or self.phase(info) != S3 or info.state is not UploadState.UPLOADING:
            return False
        plan = PartPlan.from_meta(info.storage_meta)
        if offset < 0 or offset >= plan.capacity:
            return False
        number, inside = plan.locate(offset)
        recorded = {p.number: p for p in await self._ledger.list_parts(info.id)}
        if scan(plan, recorded, {}).offset < offset - inside:
            return False  # parts before ``number`` are not all recorded
        if inside:
            found = await self.s3.head(tail)
            if found is None or found[0] != inside or found[1].get("part") != str(number):
                return False
        await self._discard_pipeline(info.id)
        await self._ledger.delete_parts(info.id, first=number)
        if not inside:
            await self.s3.delete(tail)
        return await self.durable_offset(info) == offset

    async def finish(self, info: UploadInfo) -> Mapping[str, str]:
        phase = self.phase(info)
        if phase == COMPLETE:
            return dict(info.storage_meta)
        if phase == LOCAL:
            await self._local.finish(info)
            return {"phase": LOCAL}
        assert info.length is not None
        pipeline = await self._open_pipeline(info)
        pipeline.attach()
        try:
            await pipeline.flush(final=True, stall=self.stall)
            await pipeline.complete(info.length)
        finally:
            pipeline.detach()
            await self.release_pipeline(pipeline)
        pipeline.spool.destroy()
        await self._ledger.delete_parts(info.id)
        return {"phase": COMPLETE, "key": info.storage_meta["key"]}

    async def declare_length(self, info: UploadInfo, length: int) -> Mapping[str, str]:
        return dict(info.storage_meta)

    def read(self, info: UploadInfo, start: int, end: int) -> AsyncIterator[bytes]:
        if self.phase(info) != COMPLETE:
            return self._local.read(info, start, end)
        return self.s3.read_range(info.storage_meta.get("key", self.key(info.id)), start, end)

    async def download_url(self, info: UploadInfo, filename: str | None) -> str | None:
        """A presigned GET URL for S3-stored uploads in ``redirect`` mode."""
        if self.config.download != "redirect" or self.phase(info) != COMPLETE:
            return None
        name = protocol.safe_filename(filename or "", info.id)
        disposition = f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(filename or name, safe='')}"
        return await self.s3.presign_get(
            info.storage_meta.get("key", self.key(info.id)),
            self.config.presign_ttl,
            disposition,
            "application/octet-stream",
        )

    async def ping(self) -> None:
        await self.s3.head_bucket()

    async def close(self) -> None:
        for upload_id in list(self._pipelines):
            await self._discard_pipeline(upload_id)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.splicer.shutdown(wait=False, cancel_futures=True)
        await self._local.close()

    # --- capabilities -------------------------------------------------------------------

    async def terminate(self, info: UploadInfo) -> None:
        await self._discard_pipeline(info.id)
        meta = info.storage_meta
        key = meta.get("key", self.key(info.id))
        if meta.get("upload_id"):
            await self.s3.abort(key, meta["upload_id"])
        tail = self.tail_key(info.id)
        if tail is not None:
            await self.s3.delete(tail)
        if self.phase(info) == COMPLETE:
            await self.s3.delete(key)
        self.spool(info.id).destroy()
        await self._local.terminate(info)
        await self._ledger.delete_parts(info.id)

    def _joins_locally(self, partials: Sequence[UploadInfo]) -> bool:
        """Local partials of at most ``threshold`` bytes in all are joined on disk."""
        total = sum(p.length or 0 for p in partials)
        return total <= self.threshold and all(self._source(p).key is None for p in partials)

    async def begin_concatenate(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> Mapping[str, str]:
        """Start the multipart upload the final is assembled in (phase
        ``assembling``, naming it), unless the partials are joined on disk."""
        if self._joins_locally(partials):
            return dict(final.storage_meta)
        key = self.key(final.id)
        return {"phase": ASSEMBLING, "key": key, "upload_id": await self.s3.create_multipart(key)}

    async def concatenate(self, final: UploadInfo, partials: Sequence[UploadInfo]) -> Mapping[str, str]:
        """Local partials under the threshold are joined on disk; otherwise
        the final becomes an S3 object built by :class:`Assembler` in the
        multipart upload its meta names (started here if it names none)."""
        total = sum(p.length or 0 for p in partials)
        sources = [self._source(p) for p in partials]
        if self._joins_locally(partials):
            await self._local.concatenate(final, partials)
            return {"phase": LOCAL}
        meta = final.storage_meta
        if self.phase(final) != ASSEMBLING:
            meta = await self.begin_concatenate(final, partials)
        key, multipart_id = meta["key"], meta["upload_id"]
        spool = self.spool(final.id)
        spool.destroy()
        assembler = Assembler(
            s3=self.s3,
            key=key,
            multipart_id=multipart_id,
            spool=spool,
            slots=self._slots,
            part_size=self._plan(total).size,
            min_part_size=self.config.min_part_size,
            max_parts=self.config.max_parts,
        )
        await assembler.build(sources)
        await self._local.terminate(final)
        return {"phase": COMPLETE, "key": key, "copied_parts": str(assembler.copied)}

    def _source(self, partial: UploadInfo) -> Source:
        length = partial.length or 0
        if partial.storage == self.name and self.phase(partial) == COMPLETE:
            return Source(length=length, key=partial.storage_meta.get("key", self.key(partial.id)))
        return Source(length=length, path=self._local.path(partial.id))

    # --- maintenance ---------------------------------------------------------------------

    async def leftovers(self, older_than: float, now: float) -> Sequence[Leftover]:
        """Multipart uploads under the prefix, named like an upload, started
        more than ``older_than`` seconds before ``now``."""
        found = []
        for item in await self.s3.list_multipart(self.prefix):
            upload_id = item.key[len(self.prefix) :]
            if now - item.initiated >= older_than and protocol.is_valid_upload_id(upload_id):
                found.append(Leftover(upload_id, item.key, item.upload_id, item.initiated))
        return found

    def owns(self, info: UploadInfo, leftover: Leftover) -> bool:
        """The record is on this storage and its meta names the multipart upload."""
        return info.storage == self.name and info.storage_meta.get("upload_id") == leftover.handle

    async def remove_leftover(self, leftover: Leftover) -> None:
        await self.s3.abort(leftover.key, leftover.handle)
