"""Zero-copy into the S3 part spool when the lock changes hands
(:mod:`storage.s3_splice`, :meth:`storage.s3_pipeline.MultipartPipeline.stop`).

A new lock holder in the same process stops the old holder's pipeline before
it loads the spool; a splice step of the old holder still running in its
thread is waited for, so the new holder never adopts a part file that is
still being written, and the old writer's next step is refused before it
takes a byte. Real moto, a real socket pair, the contract suite's harness.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import tornado.ioloop

from storage.s3 import S3Storage
from storage.s3_pipeline import MultipartPipeline
from tests.contract.storage_backends import KIB, Harness, SocketBody, StorageSpec, sha256
from tests.streams import eventually
from tusd_py.core import errors
from tusd_py.core.splice import SpliceWriter

#: Seconds the old holder's step may wait for bytes (long: the test ends it with a FIN).
PATIENT = 20.0


@pytest.fixture
def harness(
    io_loop: tornado.ioloop.IOLoop, tmp_path: Path, s3_endpoint: str, bucket: str
) -> Iterator[Harness]:
    spec = StorageSpec("s3", str(tmp_path / "data"), str(tmp_path / "state.db"), s3_endpoint, bucket)
    opened = io_loop.run_sync(lambda: Harness.open(spec))
    yield opened
    io_loop.run_sync(opened.close)


def holds(pipeline: MultipartPipeline, size: int) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`eventually`: the spool's part 1 file holds ``size`` bytes."""

    async def check() -> bool:
        return pipeline.spool.existing() == {1: size}

    return check


def state(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


@pytest.mark.gen_test(timeout=60)
async def test_takeover_waits_for_a_running_splice_step(harness: Harness) -> None:
    storage = harness.storage
    assert isinstance(storage, S3Storage)
    data = random.Random(40).randbytes(300 * KIB)
    first, second = 64 * KIB, 100 * KIB
    info = await harness.create(len(data))
    old = await storage.open_writer(info)
    assert isinstance(old, SpliceWriter) and old.can_splice
    pipeline = storage.pipeline_of(info.id)
    assert pipeline is not None
    body = SocketBody()
    try:
        await body.send(data[:first])
        fd = body.sock.fileno()
        step = asyncio.ensure_future(old.splice_from(fd, len(data), budget=PATIENT, grace=PATIENT))
        await eventually(holds(pipeline, first), what="the first bytes in the spool")
        assert pipeline.splicing is not None  # the step waits for more in its thread
        # a new holder (the lock was taken over) opens the upload meanwhile
        taking_over = asyncio.ensure_future(storage.open_writer(info))
        await eventually(state(lambda: pipeline.closed), what="the old pipeline to be stopped")
        await body.send(data[first : first + second])  # the old step still takes these ...
        await eventually(holds(pipeline, first + second), what="more bytes in the spool")
        assert not taking_over.done()  # ... and the new holder waits for it
        await body.send(b"", then_fin=True)
        done = await step
        assert (done.stored, done.eof) == (first + second, True)
        with pytest.raises(errors.OffsetMismatch, match=str(first + second)):
            await taking_over  # it saw every byte the old step stored
        with pytest.raises(errors.UploadInterrupted):
            await old.splice_from(fd, len(data), budget=1.0, grace=0.1)  # taken over: refused at once
        assert await old.close() == first + second
    finally:
        body.close()
    assert await storage.durable_offset(info) == first + second
    info = await harness.reconcile(info)
    info = await harness.append(info, data[info.offset :])
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)
