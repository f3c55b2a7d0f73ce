"""Zero-copy appends into the S3 part spool.

:class:`SpoolSplicer` is the splice half of an S3-phase
:class:`~storage.s3_writer.S3Writer` (a :class:`tusd_py.core.splice.SpliceWriter`):
one :meth:`SpoolSplicer.splice_from` call is one bounded step that moves body
bytes socket → pipe → spool part file with ``splice(2)``
(:func:`tusd_py.core.splice.splice_step`) in a worker thread, never through
Python and never on the IOLoop.

The step's bytes are cut along the upload's part plan exactly as
:meth:`~storage.s3_pipeline.MultipartPipeline.write` cuts copied bytes
(:meth:`~storage.s3_pipeline.MultipartPipeline.pieces`): each piece is spliced
into its part's file, then counted on the loop
(:meth:`~storage.s3_pipeline.MultipartPipeline.stored`), which seals a part it
fills and queues its UploadPart. So part boundaries (also inside one step),
offsets, the spool, the ledger and what a cut leaves behind are the same as
for copied bytes.

Contract of a step (as :class:`~tusd_py.core.splice.SpliceStep` states):

* at most ``budget`` seconds (a step waiting for room in a full spool before
  any byte moved may take longer, as a copying write would); it ends early
  when the socket stays empty for ``grace`` seconds, at EOF, or at a file error;
* raises (``TusError``) only before any byte moved: pipeline stopped (lock
  taken over), S3 failing with a full spool, past the plan's capacity; after
  the first byte it returns what moved instead;
* back-pressure: a step that would start a new part waits for room before its
  first byte; once bytes moved it starts a new part only when the spool has
  room at once, else it ends (the next step waits);
* one step at a time per pipeline, announced as
  :attr:`~storage.s3_pipeline.MultipartPipeline.splicing`:
  :meth:`~storage.s3_pipeline.MultipartPipeline.stop` waits for it, so no
  thread writes into a spool after its pipeline stopped (the next lock holder
  loads the spool only then).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os

from storage.local import map_os_errors
from storage.s3_pipeline import MultipartPipeline
from tusd_py.core import errors
from tusd_py.core.splice import Pipe, SpliceStep, splice_step

#: Most bytes one step may take (bounds the pieces computed per step; a step
#: moves far less within its budget).
STEP_BYTES = 1 << 30


def _splice_into(sock: int, fd: int, pipe: Pipe, count: int, budget: float, grace: float) -> SpliceStep:
    """:func:`splice_step` into ``fd`` (a duplicate this thread closes)."""
    try:
        return splice_step(sock, fd, pipe, count, budget, grace)
    finally:
        os.close(fd)


def _retrieved(future: asyncio.Future[SpliceStep]) -> None:
    if not future.cancelled():
        future.exception()


class SpoolSplicer:
    """Splices one request's bytes into ``pipeline``'s spool in ``executor``
    threads (see module doc); :meth:`close` when the request ends."""

    def __init__(self, pipeline: MultipartPipeline, executor: concurrent.futures.Executor) -> None:
        self.pipeline = pipeline
        self._executor = executor
        self._pipe: Pipe | None = None

    async def splice_from(self, sock: int, count: int, *, budget: float, grace: float) -> SpliceStep:
        """One bounded step of up to ``count`` bytes from socket ``sock``."""
        pipeline = self.pipeline
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        taken = stored = 0
        for piece in pipeline.pieces(min(count, STEP_BYTES)):
            if piece.part_offset == 0:
                if not stored:
                    await pipeline.room()
                elif pipeline.spool.pending >= pipeline.spool.limit:
                    break
            left = deadline - loop.time()
            if stored and left <= 0:
                break
            if pipeline.closed:  # stopped while this step waited
                if stored:
                    break
                pipeline.pieces(0)  # raises the pipeline's "taken over" error
            try:
                step = await self._step(sock, piece.number, piece.length, max(left, grace), grace)
            except errors.TusError:
                if not stored:
                    raise
                break  # the next step raises it, before any byte
            pipeline.spool.added(step.stored)
            pipeline.stored(piece, step.stored)
            taken += step.taken
            stored += step.stored
            if step.error is not None:
                self._drop_pipe()  # bytes taken but not stored may still be in it
            if step.eof or step.error is not None or step.stored < piece.length:
                return SpliceStep(taken, stored, eof=step.eof, error=step.error)
        return SpliceStep(taken, stored)

    async def _step(self, sock: int, number: int, count: int, budget: float, grace: float) -> SpliceStep:
        """Splice into part ``number``'s file in a thread; the pipeline knows
        the step runs until it ended (even if this await is cancelled)."""
        if self._pipe is None:
            with map_os_errors("pipe"):
                self._pipe = Pipe()
        with map_os_errors("spool open"):
            fd = os.dup(self.pipeline.spool.target(number))
        loop = asyncio.get_running_loop()
        try:
            running = loop.run_in_executor(
                self._executor, _splice_into, sock, fd, self._pipe, count, budget, grace
            )
        except RuntimeError:  # the pool is shut down (server closing)
            os.close(fd)
            raise errors.ServerShutdown(retry_after=5) from None
        running.add_done_callback(_retrieved)  # also when nobody awaits it any more
        self.pipeline.splicing = running
        step = await asyncio.shield(running)
        self.pipeline.splicing = None
        return step

    def _drop_pipe(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def close(self) -> None:
        """Release the pipe (after the last step)."""
        self._drop_pipe()
