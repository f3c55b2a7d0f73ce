"""Webhooks through the job queue, to a real HTTP receiver on loopback.

The receiver answers 500 to the first delivery of every event and 200 after:
every event type must arrive, signed (``Tusd-Signature`` verifies with the
secret), retried with the same id and the same body bytes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.http.jobs_support import (
    ALICE,
    FAST_JOBS,
    SECRET,
    Delivery,
    Receiver,
    consuming_ctx,
    post_process,
    receiving,
    upload,
    wait_job,
)  # fmt: skip
from tests.tusclient import Tus, metadata
from tusd_py.core.config import Config
from tusd_py.events.hooks.signing import verify
from tusd_py.ops.context import AppContext


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with receiving() as pair:
        yield pair


@pytest.fixture
def config_overrides(receiver: tuple[Receiver, str]) -> dict[str, Any]:
    return {**FAST_JOBS, "jobs.max_attempts": 3, "hooks.url": [receiver[1]], "hooks.secret": SECRET}


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from consuming_ctx(io_loop, tus_config)


@pytest.mark.gen_test(timeout=60)
async def test_every_event_arrives_signed_and_is_retried_after_a_500(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, data_dir: Path, receiver: tuple[Receiver, str]
) -> None:
    record, _ = receiver
    url = await tus.create_url(
        8, headers={**ALICE, "Upload-Metadata": metadata(filename="t.csv", filetype="text/csv")}
    )
    assert (await tus.patch(url, 0, b"a,b\n1,2\n", ALICE)).code == 204
    doomed = await tus.create_url(8, headers=ALICE)
    assert (await tus.delete(doomed, ALICE)).code == 204
    broken = await upload(tus, b"bytes", filename="x.bin")
    (data_dir / "uploads" / broken).unlink()
    code, accepted = await post_process(http_client, base_url, broken, "sha256")
    assert code == 202
    await wait_job(http_client, base_url, accepted["job_id"], ("FAILED",))

    wanted = {"upload.created", "upload.finished", "upload.terminated", "job.completed", "job.failed"}
    deadline = time.monotonic() + 30
    while not wanted <= record.delivered_types():
        assert time.monotonic() < deadline, f"delivered only {record.delivered_types()}"
        await asyncio.sleep(0.05)

    with record.lock:
        deliveries = list(record.deliveries)
    by_id: dict[str, list[Delivery]] = {}
    for d in deliveries:
        assert verify(SECRET, d.signature, d.body, now=time.time()), d.signature
        assert not verify("wrong", d.signature, d.body, now=time.time())
        by_id.setdefault(json.loads(d.body)["id"], []).append(d)
    for attempts in by_id.values():
        if any(a.answered == 200 for a in attempts):
            assert attempts[0].answered == 500 and attempts[-1].answered == 200
            assert len({a.body for a in attempts}) == 1, "every retry sends the same body"
    events = [json.loads(ds[-1].body) for ds in by_id.values() if ds[-1].answered == 200]
    for event in events:
        assert set(event) == {"id", "type", "created_at", "data"} and event["created_at"].endswith("Z")
    completed = [e for e in events if e["type"] == "job.completed"]
    assert completed[0]["data"]["kind"] == "index" and completed[0]["data"]["status"] == "COMPLETED"
    failed = [e for e in events if e["type"] == "job.failed"]
    assert failed[0]["data"]["file_id"] == broken and failed[0]["data"]["attempts"] == 3
    finished = [e for e in events if e["type"] == "upload.finished"]
    assert finished[0]["data"]["file_id"] == url.rsplit("/", 1)[-1] and finished[0]["data"]["size"] == 8
