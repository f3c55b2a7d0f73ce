"""``MultipartPipeline``: one S3-relayed upload's bytes on their way to S3.

Bytes written are cut along the upload's :class:`~storage.parts.PartPlan`
into the :class:`~storage.spool.PartSpool`; every part that fills is sealed
and uploaded with UploadPart by a background task (at most ``s3.concurrency``
at once per process, shared by all uploads) while the client keeps sending.
A confirmed part is recorded in the parts ledger (``put_part``, see
:class:`storage.base.PartsLedger`) and its spool file deleted. So at any
moment the bytes held durably are: the recorded parts followed by the spool
files (:func:`scan` computes that from what survives a crash, and from what
every process sharing the data dir sees), and a new process resumes from
exactly there.

Ownership: a pipeline lives only while the upload's lock holder writes or
finishes the upload. The holder stops it (:meth:`MultipartPipeline.stop`)
before it releases the lock: uploads already sending get a bounded time to
finish and be recorded, queued ones are cancelled and their files left in
the spool. The next holder, in this process or another, loads a new pipeline
from the ledger and the spool and uploads what is left. So exactly one
process uploads a spooled part at any time, and no offset is ever computed
from a pipeline's memory.

Background tasks: every part upload's outcome is retrieved; a failure is
logged with the upload id and kept as :attr:`MultipartPipeline.failure`, so
the writer's next write, flush or the request's end reports it.

Failures: part uploads are retried in the background with capped exponential
backoff (:data:`RETRY_ROUNDS` rounds; any new request for the upload retries
at once). While S3 is failing and the spool is full, writes raise the last
:class:`errors.StorageUnavailable` (503 + Retry-After) instead of waiting;
nothing already spooled is lost.

Tail in the bucket (``s3.tail_in_bucket``, for instances that share no data
dir): at the end of each request every sealed part is uploaded and the
unfinished last part is stored as the object ``<key>.part`` (metadata
``part=<number>``), so another instance can continue the upload. In this mode
only bytes in the bucket count for other instances: :attr:`shared_offset`
(recorded parts, or the ``.part`` stored last) bounds what a request may
publish before it ends; the local spool is a cache of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from storage.base import PartsLedger
from storage.parts import PartPlan, Piece, scan, split
from storage.s3_client import AsyncS3, is_missing
from storage.spool import PartSpool
from tusd_py.core import errors
from tusd_py.core.models import PartRecord
from tusd_py.core.splice import SpliceStep

log = logging.getLogger("tusd_py.storage")

#: Background retry rounds per part before it waits for the next request.
RETRY_ROUNDS = 12
#: Backoff bounds (seconds) between retry rounds.
BACKOFF_MIN = 0.25
BACKOFF_MAX = 30.0


def _stopped(upload_id: str) -> errors.UploadInterrupted:
    return errors.UploadInterrupted(
        f"the S3 upload of {upload_id} was taken over by a newer request; resume with HEAD"
    )


def is_transient(exc: errors.TusError) -> bool:
    """Failures worth retrying (endpoint down, throttled, state store down)."""
    return isinstance(exc, (errors.StorageUnavailable, errors.StateStoreError))


class MultipartPipeline:
    """In-process state of one multipart upload (see module docstring).

    Created by :meth:`load` for a lock holder; stopped by it with
    :meth:`stop` before the lock is released.
    """

    def __init__(
        self,
        *,
        s3: AsyncS3,
        ledger: PartsLedger,
        upload_id: str,
        key: str,
        multipart_id: str,
        plan: PartPlan,
        spool: PartSpool,
        slots: asyncio.Semaphore,
        tail_key: str | None,
        recorded: dict[int, PartRecord],
        offset: int,
        bucket_offset: int = 0,
    ) -> None:
        self.s3 = s3
        self.ledger = ledger
        self.upload_id = upload_id
        self.key = key
        self.multipart_id = multipart_id
        self.plan = plan
        self.spool = spool
        self._slots = slots
        self.tail_key = tail_key
        self.recorded = recorded
        #: Bytes held (recorded parts + spool), i.e. the upload's offset.
        self.offset = offset
        #: Tail-in-bucket mode: bytes covered by recorded parts and the ``.part``
        #: object as this process last stored (or found) it.
        self._bucket_offset = bucket_offset
        self.failure: errors.TusError | None = None
        self.writers = 0
        self.closed = False
        self._tasks: dict[int, asyncio.Task[None]] = {}
        #: Parts whose UploadPart (or ledger write) is running right now.
        self._sending: set[int] = set()
        self._kick = asyncio.Event()
        self._progress = asyncio.Event()
        self.splicing: asyncio.Future[SpliceStep] | None = None  # a step of storage.s3_splice

    # --- construction ------------------------------------------------------------

    @classmethod
    async def load(
        cls,
        *,
        s3: AsyncS3,
        ledger: PartsLedger,
        upload_id: str,
        key: str,
        multipart_id: str,
        plan: PartPlan,
        spool: PartSpool,
        slots: asyncio.Semaphore,
        tail_key: str | None,
        adopt_spool: bool = False,
    ) -> MultipartPipeline:
        """Rebuild from the ledger's parts and the spool on disk (or, in
        tail-in-bucket mode, the ``.part`` object); queue sealed parts.

        ``adopt_spool``: in tail-in-bucket mode, take the spool files on disk
        instead of the bucket's ``.part`` (a local upload just cut into spool
        parts by the switch to S3; nothing of it is in the bucket yet)."""
        recorded = {p.number: p for p in await ledger.list_parts(upload_id)}
        bucket_offset = 0
        if tail_key is not None and not adopt_spool:
            spool.destroy()
            base = scan(plan, recorded, {})
            files: dict[int, int] = {}
            found = await s3.head(tail_key)
            if found is not None:
                size, meta = found
                number, inside = plan.locate(base.offset) if base.offset < plan.capacity else (0, 1)
                if inside == 0 and meta.get("part") == str(number) and 0 < size < plan.part_size(number):
                    spool.directory.mkdir(parents=True, exist_ok=True)
                    got = await s3.download(tail_key, spool.path(number))
                    if got == size:
                        files[number] = size
            spool.adopt(files)
            held = scan(plan, recorded, files)
            bucket_offset = held.offset
        else:
            files = spool.existing()
            held = scan(plan, recorded, files)
            for number in held.stale:
                spool.forget(number, files[number])
                files.pop(number)
            spool.adopt(files)
        pipeline = cls(
            s3=s3,
            ledger=ledger,
            upload_id=upload_id,
            key=key,
            multipart_id=multipart_id,
            plan=plan,
            spool=spool,
            slots=slots,
            tail_key=tail_key,
            recorded=recorded,
            offset=held.offset,
            bucket_offset=bucket_offset,
        )
        for number in held.sealed:
            spool.seal(number)
            pipeline._schedule(number)
        return pipeline

    @property
    def shared_offset(self) -> int:
        """Tail-in-bucket mode: how many bytes another instance could continue
        from right now (contiguous recorded parts, or the ``.part`` object as
        last stored, whichever reaches further); never more than :attr:`offset`."""
        return min(self.offset, max(self._bucket_offset, scan(self.plan, self.recorded, {}).offset))

    # --- writing -----------------------------------------------------------------

    def attach(self) -> None:
        """A writer starts using the pipeline; stalled retries run at once."""
        self.writers += 1
        self.kick()

    def detach(self) -> None:
        """A writer is done with the pipeline (its owner then stops it)."""
        self.writers = max(0, self.writers - 1)

    def _check_room(self) -> None:
        if self.closed:
            raise _stopped(self.upload_id)
        if self.failure is not None:
            raise self.failure
        if not self._tasks and self.spool.pending:
            self._reschedule()

    async def write(self, data: bytes) -> None:
        """Spool ``data`` after the bytes held; seal and queue full parts.

        Awaits while the spool is full (back-pressure); raises the pending S3
        failure instead when S3 is failing."""
        view = memoryview(data)
        for piece in self.pieces(len(view)):
            if piece.part_offset == 0:
                await self.room()
            self.spool.append(piece.number, view[piece.buffer_offset : piece.buffer_offset + piece.length])
            self.stored(piece, piece.length)

    def pieces(self, length: int) -> list[Piece]:
        """The next ``length`` bytes after :attr:`offset`, cut along part
        boundaries (a writer spools them in this order). Raises 413 past the
        plan's capacity, or when the pipeline was stopped."""
        if self.closed:
            raise _stopped(self.upload_id)
        try:
            return list(split(self.plan, self.offset, length))
        except ValueError as exc:
            raise errors.MaxSizeExceeded(f"upload too large for S3 multipart: {exc}") from None

    async def room(self) -> None:
        """Wait until a new part may be started in the spool (back-pressure)."""
        await self.spool.wait_for_room(self._check_room)

    def stored(self, piece: Piece, n: int) -> None:
        """``n`` bytes of ``piece`` are in its spool file; a part they fill is sealed and queued."""
        self.offset += n
        if n == piece.length and piece.fills_part:
            self.spool.seal(piece.number)
            self._schedule(piece.number)

    # --- background uploads --------------------------------------------------------

    def _part_length(self, number: int) -> int:
        start = self.plan.part_start(number)
        return min(self.plan.part_size(number), self.offset - start)

    def _schedule(self, number: int) -> None:
        if number in self._tasks or self.closed:
            return
        task = asyncio.create_task(
            self._upload(number, self._part_length(number)), name=f"s3 part {number} of {self.upload_id}"
        )
        self._tasks[number] = task
        task.add_done_callback(self._retrieve)

    def _retrieve(self, task: asyncio.Task[None]) -> None:
        """Done callback of every part upload: a failure that escaped
        :meth:`_upload` is logged with the upload id and kept as
        :attr:`failure` (the writer, flush or the request's end raises it)."""
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, errors.TusError):
            failure = exc
            log.warning("%s failed: %s", task.get_name(), exc.message, extra={"upload_id": self.upload_id})
        else:
            failure = errors.StorageError(f"uploading a part of {self.upload_id} to S3 failed: {exc!r}")
            log.error("%s failed", task.get_name(), exc_info=exc, extra={"upload_id": self.upload_id})
        self.failure = failure
        self._signal()

    def _reschedule(self) -> None:
        for number in self.spool.pending_numbers():
            self._schedule(number)

    def kick(self) -> None:
        """Retry failed parts now instead of after their backoff; the last
        failure is forgotten until a retry fails again."""
        self.failure = None
        self._kick.set()
        self._kick = asyncio.Event()
        self._reschedule()

    def _signal(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()
        self.spool.notify()

    async def _upload(self, number: int, size: int) -> None:
        delay = BACKOFF_MIN
        try:
            for _ in range(RETRY_ROUNDS):
                try:
                    async with self._slots:
                        if self.closed:
                            return
                        self._sending.add(number)
                        try:
                            etag = await self.s3.upload_part(
                                self.key, self.multipart_id, number, self.spool.path(number), size
                            )
                            record = PartRecord(number=number, etag=etag, size=size)
                            await self.ledger.put_part(self.upload_id, record)
                        finally:
                            self._sending.discard(number)
                except errors.TusError as exc:
                    self.failure = exc
                    self._signal()
                    if not is_transient(exc):
                        log.warning(
                            "part %d of %s failed: %s",
                            number,
                            self.upload_id,
                            exc.message,
                            extra={"upload_id": self.upload_id},
                        )
                        return
                    if self.closed:
                        return
                    kick = self._kick
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(kick.wait(), delay)
                    delay = min(delay * 2, BACKOFF_MAX)
                    continue
                self.recorded[number] = record
                self.failure = None
                self.spool.done(number, size)
                return
            log.warning(
                "part %d of %s: S3 still failing, waiting for the next request",
                number,
                self.upload_id,
                extra={"upload_id": self.upload_id},
            )
        finally:
            self._tasks.pop(number, None)
            self._signal()

    # --- flushing ------------------------------------------------------------------

    async def flush(self, *, final: bool, stall: float = 60.0) -> None:
        """Wait until every sealed part is in S3; with ``final``, the unfinished
        last part is sealed and uploaded too. Raises the S3 failure that stops
        progress (background retries go on), or 503 when no part upload ended
        for ``stall`` seconds (so no request waits on S3 without bound)."""
        if final and self.offset > 0 and self.offset < self.plan.capacity:
            number, inside = self.plan.locate(self.offset)
            if inside > 0:
                self.spool.seal(number)
                self._schedule(number)
        self.kick()
        while self.spool.pending:
            if self.closed:
                raise _stopped(self.upload_id)
            if not self._tasks:
                self._reschedule()
            progress = self._progress
            try:
                await asyncio.wait_for(progress.wait(), stall)
            except TimeoutError:
                raise errors.StorageUnavailable(
                    f"S3 accepted no part of upload {self.upload_id} for {stall:g} s; "
                    "the bytes are kept, resume with HEAD",
                    retry_after=stall,
                ) from None
            if self.failure is not None and self.spool.pending:
                raise self.failure

    async def store_tail(self, stall: float = 60.0) -> None:
        """Tail-in-bucket mode: upload sealed parts, then the unfinished part
        as ``<key>.part`` (or delete a stale one); ``stall``: see :meth:`flush`."""
        assert self.tail_key is not None
        await self.flush(final=False, stall=stall)
        if self.offset >= self.plan.capacity:
            return
        offset = self.offset
        number, inside = self.plan.locate(offset)
        if inside:
            await self.s3.put_file(self.tail_key, self.spool.path(number), inside, {"part": str(number)})
        else:
            await self.s3.delete(self.tail_key)
        self._bucket_offset = offset

    def parts_in_order(self, length: int) -> list[PartRecord]:
        """The recorded parts ``1..n``; raises unless they hold exactly ``length`` bytes."""
        parts = [self.recorded[n] for n in sorted(self.recorded)]
        held = sum(p.size for p in parts)
        if [p.number for p in parts] != list(range(1, len(parts) + 1)) or held != length:
            raise errors.StorageError(
                f"S3 parts of upload {self.upload_id} hold {held} bytes "
                f"in {len(parts)} parts, expected {length}"
            )
        return parts

    async def complete(self, length: int) -> None:
        """CompleteMultipartUpload (an empty object when no byte was sent)."""
        parts = self.parts_in_order(length)
        if not parts:
            await self.s3.abort(self.key, self.multipart_id)
            await self.s3.put_file(self.key, None, 0, {})
            return
        try:
            await self.s3.complete(self.key, self.multipart_id, [(p.number, p.etag) for p in parts])
        except errors.StorageError as exc:
            # A retried completion whose first attempt succeeded.
            found = await self.s3.head(self.key) if is_missing(exc) else None
            if found is None or found[0] != length:
                raise
        if self.tail_key is not None:
            await self.s3.delete(self.tail_key)

    async def stop(self, drain: float = 0.0, *, fsync: bool = False) -> None:
        """Stop background uploads; the owner calls this before it releases
        the upload's lock. Parts being sent get up to ``drain`` seconds to be
        confirmed and recorded; the others are cancelled (their files stay in
        the spool for the next lock holder). With ``fsync`` the spool files
        left are fsynced last (raises ``BackendError`` if that fails; the
        pipeline is stopped all the same). A running splice step is waited
        for (at most its budget), so no write into the spool outlives the
        pipeline. Never raises for a part upload. Idempotent."""
        self.closed = True
        self._kick.set()
        tasks = dict(self._tasks)
        for number, task in tasks.items():
            if drain <= 0 or number not in self._sending:
                task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks.values(), timeout=drain if drain > 0 else None)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        if self.splicing is not None:
            await asyncio.wait([self.splicing])
        self.spool.close_current()
        self.spool.notify()
        if fsync:
            await self.spool.sync()
