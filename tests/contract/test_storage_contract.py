"""The one storage contract every storage configuration passes.

Configurations (``storage_backends.KINDS``): ``local`` (``LocalStorage`` on a
temporary data dir), ``s3`` (``S3Storage`` on moto, parts ledger in a SQLite
state store, spool in the data dir) and ``s3-tail`` (the same with
``s3.tail_in_bucket``: the bucket and the ledger hold everything). Every case
drives the storage through :mod:`storage.base` only, with the record kept as
the service keeps it (:class:`~tests.contract.storage_backends.Harness`), and
checks bytes (sha256) and offsets. A capability case is skipped, with the
reason, where the backend does not claim it.

Sizes stay in KiB except where the point is S3 parts (5 MiB, moto's minimum).
The two-process cases run :mod:`tests.contract.storage_peer` as a real
subprocess on the same data dir, SQLite file and bucket, or on its own data
dir where the backend claims to share uploads without one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop

from storage.base import (
    CAPABILITY_PROTOCOLS,
    Capability,
    ChunkWriter,
    Concatenatable,
    ContentServer,
    LengthDeferrable,
    Rewindable,
    Storage,
)
from tests.contract.storage_backends import (
    CHUNK,
    KIB,
    KINDS,
    PART,
    S3_THRESHOLD,
    Harness,
    SocketBody,
    Spliced,
    StorageSpec,
    publishable,
    sha256,
)
from tests.integration import s3_support as s3t
from tusd_py.core import errors
from tusd_py.core.composer import Composer
from tusd_py.core.models import ConcatKind, UploadInfo
from tusd_py.core.splice import SpliceWriter
from tusd_py.locking.memory import MemoryLocker

ROOT = Path(__file__).resolve().parents[2]
#: Seconds a peer process may take for its steps (it imports boto3 first).
PEER_TIMEOUT = 90.0


def pattern(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(params=KINDS)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSpec:
    endpoint = bucket = ""
    if request.param != "local":
        endpoint = str(request.getfixturevalue("s3_endpoint"))
        bucket = str(request.getfixturevalue("bucket"))
    return StorageSpec(
        kind=request.param,
        data_dir=str(tmp_path / "data"),
        sqlite_path=str(tmp_path / "state.db"),
        endpoint=endpoint,
        bucket=bucket,
    )


@pytest.fixture
def harness(io_loop: tornado.ioloop.IOLoop, spec: StorageSpec) -> Iterator[Harness]:
    opened = io_loop.run_sync(lambda: Harness.open(spec))
    yield opened
    io_loop.run_sync(opened.close)


def requires(storage: Storage, capability: Capability) -> None:
    if capability not in storage.capabilities:
        pytest.skip(f"{type(storage).__name__} does not claim {capability}")


def peer_spec(spec: StorageSpec, tmp_path: Path, own_dir: bool) -> StorageSpec:
    """Another instance's view: its own data dir if ``own_dir``, which only a
    backend sharing uploads without a data dir supports (else skipped)."""
    if not own_dir:
        return spec
    if not spec.shares_without_data_dir:
        pytest.skip(
            f"{spec.kind} keeps upload bytes in its data dir: instances without a shared one share nothing"
        )
    return spec.with_data_dir(tmp_path / "peer-data")


# --- capabilities -------------------------------------------------------------------


def test_claimed_capabilities_are_the_implemented_ones(harness: Harness) -> None:
    storage = harness.storage
    assert isinstance(storage, Storage)
    implemented = {cap for cap, proto in CAPABILITY_PROTOCOLS.items() if isinstance(storage, proto)}
    assert storage.capabilities & set(CAPABILITY_PROTOCOLS) == implemented
    # The startup check of the server accepts what the backend claims.
    composer = Composer(storages={storage.name: storage}, state=harness.store, locker=MemoryLocker())
    assert composer.has(Capability.TERMINATE) is (Capability.TERMINATE in storage.capabilities)


@pytest.mark.gen_test(timeout=60)
async def test_serve_content_gives_the_bytes(harness: Harness) -> None:
    """A complete upload is served: by a URL the client can GET (a
    :class:`ContentServer` that offers one) or streamed by ``read``."""
    storage = harness.storage
    requires(storage, Capability.SERVE_CONTENT)
    data = pattern(100 * KIB + 5, seed=12)
    info = await harness.upload(data)
    url = await storage.download_url(info, "report.pdf") if isinstance(storage, ContentServer) else None
    if harness.spec.kind != "local":
        assert url is not None  # s3.download = redirect (the default)
    if url is not None:
        assert url.startswith("http://127.0.0.1:")
        served = await asyncio.to_thread(_get, url)
        assert sha256(served) == sha256(data)
    assert sha256(await harness.read(info)) == sha256(data)


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return bytes(answer.read())


# --- create, write, durable offset, finish, read ------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_host_offset_is_answered_without_waiting(harness: Harness) -> None:
    """A storage claiming ``HOST_OFFSET`` answers ``durable_offset`` without
    ever suspending (HEAD's catch-up arms no timer for it)."""
    requires(harness.storage, Capability.HOST_OFFSET)
    info = await harness.create(10 * KIB)
    info = await harness.append(info, pattern(4 * KIB, seed=3))
    step = harness.storage.durable_offset(info)
    with pytest.raises(StopIteration) as done:
        step.send(None)
    assert done.value.value == 4 * KIB


@pytest.mark.gen_test(timeout=60)
async def test_durable_offset_follows_every_request_and_bytes_read_back(harness: Harness) -> None:
    data = pattern(200 * KIB + 7, seed=1)
    info = await harness.create(len(data))
    assert await harness.storage.durable_offset(info) == 0
    for end in (70 * KIB, 150 * KIB + 3, len(data)):
        info = await harness.append(info, data[info.offset : end])
        assert info.offset == end
        assert await harness.storage.durable_offset(info) == end
    info = await harness.finish(info)
    assert await harness.storage.durable_offset(info) == len(data)
    assert sha256(await harness.read(info)) == sha256(data)
    assert await harness.read(info, 1000, 1999) == data[1000:2000]
    assert await harness.read(info, len(data) - 1, len(data) - 1) == data[-1:]


@pytest.mark.gen_test(timeout=60)
async def test_cut_request_keeps_its_bytes_and_resumes_from_them(harness: Harness) -> None:
    data = pattern(200 * KIB, seed=2)
    info = await harness.create(len(data))
    info = await harness.append(info, data[: 40 * KIB])
    writer = await harness.storage.open_writer(info)
    await harness.write(writer, data[40 * KIB : 40 * KIB + 3 * CHUNK + 5])
    written = await writer.close()  # the body was cut after these bytes
    assert written == 3 * CHUNK + 5
    assert await writer.close() == written  # idempotent
    assert await harness.storage.durable_offset(info) == 40 * KIB + written
    info = await harness.commit(info, written)
    info = await harness.append(info, data[info.offset :])
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)


@pytest.mark.gen_test(timeout=90)
async def test_parts_boundaries_inside_requests_read_back(harness: Harness) -> None:
    data = pattern(PART + 300 * KIB, seed=3)
    info = await harness.create(len(data))
    for end in (2 * PART // 3, PART + 100 * KIB, len(data)):
        info = await harness.append(info, data[info.offset : end])
        assert await harness.storage.durable_offset(info) == end
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)
    assert await harness.read(info, PART - 10, PART + 9) == data[PART - 10 : PART + 10]


# --- publishable offset and rewind ---------------------------------------------------------


@pytest.mark.gen_test(timeout=90)
async def test_publishable_bytes_are_held_for_every_instance(
    harness: Harness, spec: StorageSpec, tmp_path: Path
) -> None:
    """Mid-request, the bytes a writer lets the service publish are the ones
    another instance (own data dir where the backend shares without one)
    already holds (:class:`storage.base.BoundedProgress`; without it, every
    written byte)."""
    data = pattern(PART + 64 * KIB, seed=4)
    info = await harness.create(len(data))
    writer = await harness.storage.open_writer(info)
    sent = data[: PART + 32 * KIB]
    await harness.write(writer, sent)
    published = await publishable(writer, len(sent), at_least=PART)
    assert PART <= published <= len(sent)  # at least the part in the bucket
    other = await Harness.open(peer_spec(spec, tmp_path, own_dir=spec.shares_without_data_dir))
    try:
        assert await other.storage.durable_offset(info) >= published
        assert await writer.close() == len(sent)
        assert await harness.storage.durable_offset(info) == len(sent)
        assert await other.storage.durable_offset(info) == len(sent)
    finally:
        await writer.close()
        await other.close()


@pytest.mark.parametrize("published", [0, PART], ids=["at-start", "at-part-boundary"])
@pytest.mark.gen_test(timeout=90)
async def test_rewind_after_a_cut_to_the_published_offset(harness: Harness, published: int) -> None:
    """A request stored bytes but died before publishing them: a backend
    that rewinds (tail in bucket) drops them, one that does not changes
    nothing; either way the upload then completes with the right bytes.
    An offset it cannot reach (inside the stored tail, not at its end) is
    refused without a change."""
    storage = harness.storage
    if not isinstance(storage, Rewindable):
        pytest.skip(f"{type(storage).__name__} is not Rewindable")
    data = pattern(PART + 200 * KIB, seed=5)
    info = await harness.create(len(data))
    if published:
        info = await harness.append(info, data[:published])
    unpublished = data[published : published + 100 * KIB]
    writer = await storage.open_writer(info)
    await harness.write(writer, unpublished)
    assert await writer.close() == len(unpublished)  # ... and the offset is never committed
    held = await storage.durable_offset(info)
    assert held == published + len(unpublished)
    assert await storage.rewind(info, published + 10 * KIB) is False
    assert await storage.durable_offset(info) == held
    rewound = await storage.rewind(info, published)
    assert rewound is harness.spec.shares_without_data_dir  # the tail-in-bucket mode rewinds
    if rewound:
        assert await storage.durable_offset(info) == published
        data = data[:published] + pattern(len(data) - published, seed=6)  # the client resends other bytes
    else:
        assert await storage.durable_offset(info) == held
        info = await harness.reconcile(info)
    info = await harness.append(info, data[info.offset :])
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)


# --- deferred length, concatenation, termination -----------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_deferred_length_declared_later(harness: Harness) -> None:
    """Starts without a length (S3: on disk, then switched to a multipart
    upload when it passes the threshold inside a request)."""
    storage = harness.storage
    requires(storage, Capability.DECLARE_LENGTH)
    assert isinstance(storage, LengthDeferrable)
    data = pattern(150 * KIB + 1, seed=8)
    info = await harness.create(None)
    # S3 switches to a multipart upload inside this request; the record
    # returned by the commit carries the new storage_meta (see Harness.write).
    info = await harness.append(info, data[: 100 * KIB])
    assert await storage.durable_offset(info) == 100 * KIB
    meta = await storage.declare_length(info, len(data))
    info = await harness.store.update(info.id, {"length": len(data), "storage_meta": dict(meta)})
    info = await harness.append(info, data[info.offset :])
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)
    if harness.spec.kind != "local":
        stored = s3t.object_bytes(harness.spec.endpoint, harness.spec.bucket, info.id)
        assert sha256(stored) == sha256(data)


@pytest.mark.parametrize(
    "sizes",
    [(10 * KIB, 20 * KIB + 1, 5 * KIB), (100 * KIB, 0, 1, 70 * KIB)],
    ids=["under-threshold", "over-threshold"],
)
@pytest.mark.gen_test(timeout=60)
async def test_concatenate_partials_into_a_final(harness: Harness, sizes: tuple[int, ...]) -> None:
    storage = harness.storage
    requires(storage, Capability.CONCATENATE)
    assert isinstance(storage, Concatenatable)
    pieces = [pattern(size, seed=20 + i) for i, size in enumerate(sizes)]
    partials = [await harness.upload(piece, ConcatKind.PARTIAL) for piece in pieces]
    total = sum(sizes)
    final = await harness.create(total, ConcatKind.FINAL, [p.id for p in partials])
    # The "assembling" meta (naming what the storage started) is saved first.
    begun = await storage.begin_concatenate(final, partials)
    final = await harness.store.update(final.id, {"storage_meta": dict(begun)})
    meta = await storage.concatenate(final, partials)
    final = final.replace(storage_meta=dict(meta))
    await harness.store.update(final.id, {"storage_meta": dict(meta)})
    final = await harness.commit(final, total)
    final = await harness.finish(final)
    assert sha256(await harness.read(final)) == sha256(b"".join(pieces))
    for partial, piece in zip(partials, pieces, strict=True):
        if piece:
            assert await harness.read(partial) == piece  # partials are retired by the service, not here


@pytest.mark.gen_test(timeout=60)
async def test_terminate_frees_everything_and_reads_fail_cleanly(harness: Harness) -> None:
    storage = harness.storage
    requires(storage, Capability.TERMINATE)
    data = pattern(PART + 200 * KIB, seed=9)
    unfinished = await harness.create(len(data))
    unfinished = await harness.append(unfinished, data[: PART + 100 * KIB])  # S3: part 1 sent and recorded
    complete = await harness.upload(data[: 200 * KIB])
    for info in (unfinished, complete):
        assert await harness.leftovers(info.id), "nothing stored before terminate"
        await harness.terminate(info)
        assert await harness.leftovers(info.id) == []
        await harness.terminate(info)  # unknown data is not an error
    assert await storage.durable_offset(unfinished) == 0
    with pytest.raises(errors.TusError):
        await harness.read(complete)


# --- zero-copy: bodies spliced from a socket ------------------------------------------------


@pytest.fixture
def body() -> Iterator[SocketBody]:
    sent = SocketBody()
    yield sent
    sent.close()


async def splice_rest(harness: Harness, info: UploadInfo, rest: bytes) -> Spliced:
    """``rest`` sent over a fresh socket pair and spliced into a new writer of
    ``info`` (closed here, having taken it all)."""
    again = SocketBody()
    try:
        writer = await splice_writer(harness, info)
        sending = asyncio.ensure_future(again.send(rest))
        done = await harness.splice(writer, again, len(rest), upload_id=info.id)
        await sending
        assert await writer.close() == len(rest)
    finally:
        again.close()
    return done


async def splice_writer(harness: Harness, info: UploadInfo) -> ChunkWriter:
    """A writer for ``info`` that takes spliced bodies (every backend's does)."""
    writer = await harness.storage.open_writer(info)
    assert isinstance(writer, SpliceWriter), f"{type(writer).__name__} cannot splice"
    assert writer.can_splice
    return writer


@pytest.mark.gen_test(timeout=90)
async def test_spliced_body_is_stored_like_copied_bytes(harness: Harness, body: SocketBody) -> None:
    """A body whose first bytes are copied and the rest spliced (as the
    server does), starting inside a part and crossing a part boundary within
    one splice step, reads back exactly; the offsets follow."""
    data = pattern(PART + 300 * KIB, seed=30)
    info = await harness.create(len(data))
    info = await harness.append(info, data[: 40 * KIB + 3])
    start = info.offset
    writer = await splice_writer(harness, info)
    head = 64 * KIB
    await harness.write(writer, data[start : start + head], upload_id=info.id)
    rest = data[start + head :]
    sending = asyncio.ensure_future(body.send(rest))
    done = await harness.splice(writer, body, len(rest), upload_id=info.id)
    await sending
    assert (done.taken, done.spliced, done.copied, done.cut) == (len(rest), len(rest), 0, False)
    first = start + head
    assert any(first + a < PART < first + b for a, b in done.steps), done.steps
    assert await writer.close() == head + len(rest)
    assert await harness.storage.durable_offset(info) == len(data)
    info = await harness.commit(info, head + len(rest))
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)
    assert await harness.read(info, PART - 10, PART + 9) == data[PART - 10 : PART + 10]


@pytest.mark.gen_test(timeout=90)
async def test_spliced_body_cut_mid_part_keeps_its_bytes(harness: Harness, body: SocketBody) -> None:
    """The client goes away inside a part, after a part boundary: the spliced
    bytes are kept, the storage holds exactly them, and a second spliced
    request resumes from there."""
    data = pattern(2 * PART + 100 * KIB, seed=31)
    info = await harness.create(len(data))
    writer = await splice_writer(harness, info)
    sent = PART + 100 * KIB + 5
    sending = asyncio.ensure_future(body.send(data[:sent], then_fin=True))
    done = await harness.splice(writer, body, len(data), upload_id=info.id)
    await sending
    assert done.cut and done.error is None
    assert (done.taken, done.spliced) == (sent, sent)
    assert await writer.close() == sent
    assert await harness.storage.durable_offset(info) == sent
    info = await harness.commit(info, sent)
    done = await splice_rest(harness, info, data[sent:])
    assert (done.spliced, done.cut) == (len(data) - sent, False)
    info = await harness.commit(info, len(data) - sent)
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)


@pytest.mark.gen_test(timeout=90)
async def test_spliced_deferred_length_switches_like_copied_bytes(harness: Harness, body: SocketBody) -> None:
    """A deferred-length upload spliced past the S3 threshold: the splice
    stops at the threshold, the copying path takes the byte that crosses it
    and saves the switch to S3; the next request splices into the spool."""
    storage = harness.storage
    requires(storage, Capability.DECLARE_LENGTH)
    assert isinstance(storage, LengthDeferrable)
    data = pattern(PART + 150 * KIB, seed=32)
    info = await harness.create(None)
    writer = await splice_writer(harness, info)
    first = 150 * KIB
    sending = asyncio.ensure_future(body.send(data[:first]))
    done = await harness.splice(writer, body, first, upload_id=info.id)
    await sending
    s3 = harness.spec.kind != "local"
    expected = S3_THRESHOLD if s3 else first
    assert (done.taken, done.spliced, done.copied) == (first, expected, first - expected)
    assert await writer.close() == first
    info = await harness.commit(info, first)
    assert info.storage_meta.get("phase") == ("s3" if s3 else None)
    meta = await storage.declare_length(info, len(data))
    info = await harness.store.update(info.id, {"length": len(data), "storage_meta": dict(meta)})
    done = await splice_rest(harness, info, data[first:])
    assert (done.spliced, done.copied) == (len(data) - first, 0)
    info = await harness.commit(info, len(data) - first)
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)
    if s3:
        stored = s3t.object_bytes(harness.spec.endpoint, harness.spec.bucket, info.id)
        assert sha256(stored) == sha256(data)


# --- two processes ------------------------------------------------------------------------------


def peer_args(spec: StorageSpec, upload_id: str, data: Path, steps: list[dict[str, Any]]) -> list[str]:
    """The command line of a ``storage_peer`` running ``steps`` on ``upload_id``."""
    job = {"spec": spec.to_json(), "upload_id": upload_id, "data": str(data), "steps": steps}
    return [sys.executable, "-m", "tests.contract.storage_peer", json.dumps(job)]


def peer_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def run_peer(
    spec: StorageSpec, upload_id: str, data: Path, steps: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Run ``steps`` in a new ``storage_peer`` process; its JSON answers."""
    done = subprocess.run(
        peer_args(spec, upload_id, data, steps),
        cwd=ROOT,
        env=peer_env(),
        capture_output=True,
        timeout=PEER_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return [json.loads(line) for line in done.stdout.decode().splitlines()]


@pytest.mark.parametrize("own_dir", [False, True], ids=["shared-dir", "own-dir"])
@pytest.mark.gen_test(timeout=180)
async def test_second_process_continues_the_upload(
    harness: Harness, spec: StorageSpec, tmp_path: Path, own_dir: bool
) -> None:
    peer = peer_spec(spec, tmp_path, own_dir)
    data = pattern(PART + 200 * KIB, seed=10)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    info = await harness.create(len(data))
    info = await harness.append(info, data[: 100 * KIB])
    steps: list[dict[str, Any]] = [{"do": "durable"}, {"do": "append", "end": 3 << 20}, {"do": "durable"}]
    said = await asyncio.to_thread(run_peer, peer, info.id, source, steps)
    assert said == [{"durable": 100 * KIB}, {"offset": 3 << 20}, {"durable": 3 << 20}]
    info = await harness.load(info.id)
    assert await harness.storage.durable_offset(info) == 3 << 20
    info = await harness.append(info, data[info.offset : PART + 100 * KIB])
    steps = [{"do": "durable"}, {"do": "append", "end": len(data)}, {"do": "finish"}, {"do": "sha256"}]
    said = await asyncio.to_thread(run_peer, peer, info.id, source, steps)
    assert said == [
        {"durable": PART + 100 * KIB},
        {"offset": len(data)},
        {"finished": True},
        {"sha256": sha256(data)},
    ]
    info = await harness.load(info.id)
    assert sha256(await harness.read(info)) == sha256(data)


@pytest.mark.parametrize("splice", [False, True], ids=["copied", "spliced"])
@pytest.mark.parametrize("own_dir", [False, True], ids=["shared-dir", "own-dir"])
@pytest.mark.gen_test(timeout=180)
async def test_killed_process_leaves_an_offset_others_resume_from(
    harness: Harness, spec: StorageSpec, tmp_path: Path, own_dir: bool, splice: bool
) -> None:
    """A process is killed (SIGKILL) mid-request, its writer never closed:
    what the storage then holds is at least what it let be published and at
    most what it was sent, and the upload completes from there; also when
    the body was spliced from a socket."""
    peer = peer_spec(spec, tmp_path, own_dir)
    data = pattern(PART + 200 * KIB, seed=11)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    info = await harness.create(len(data))
    info = await harness.append(info, data[: 64 * KIB])
    sent = PART + 100 * KIB
    step = {"do": "hang", "end": sent, "settle": PART - info.offset, "splice": splice}  # part 1 in the bucket
    said = await asyncio.to_thread(_hang_then_kill, peer, info.id, source, step)
    assert said["written"] == sent - info.offset
    assert said["spliced"] == (said["written"] if splice else 0)
    assert said["publishable"] >= PART - info.offset  # the peer's part 1 is held
    held = await harness.storage.durable_offset(info)
    assert info.offset + said["publishable"] <= held <= sent
    info = await harness.reconcile(info)
    assert info.offset == held
    info = await harness.append(info, data[info.offset :])
    info = await harness.finish(info)
    assert sha256(await harness.read(info)) == sha256(data)


def _hang_then_kill(spec: StorageSpec, upload_id: str, data: Path, step: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.Popen(
        peer_args(spec, upload_id, data, [step]),
        cwd=ROOT,
        env=peer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the peer exits by itself after HANG_LIMIT
        assert line, (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")[-3000:]
        return dict(json.loads(line))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
