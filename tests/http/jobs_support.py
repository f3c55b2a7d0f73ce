"""Helpers of the job tests: a context whose job consumer runs in-process,
uploads with metadata, polling a job or status document to an end state, and
a webhook receiver (a real HTTP server on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.restapi import HeaderAuthenticator, bearer, get_json
from tests.tusclient import Tus, metadata
from tusd_py.cli.server import build_context
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

ALICE = bearer("alice")
#: Config overrides that keep retries and lease recovery quick in tests.
FAST_JOBS = {"jobs.retry_delay": 0.05, "jobs.max_retry_delay": 0.2, "jobs.visibility_timeout": 2.0}


def jobs_overrides(
    deployment: str, redis_url: Callable[[], str], values: Mapping[str, Any]
) -> dict[str, Any]:
    """Config overrides of a jobs test on ``deployment`` ("sqlite": SQLite state +
    SqliteHuey; "redis": Redis for both, on a fresh key prefix): :data:`FAST_JOBS`
    plus ``values``. ``redis_url`` is called only for Redis."""
    out: dict[str, Any] = {**FAST_JOBS, **values}
    if deployment == "redis":
        out["redis.url"] = redis_url()
        out["redis.prefix"] = f"jobs-{uuid.uuid4().hex[:8]}:"
    return out


#: ``[hooks] secret`` of the webhook tests.
SECRET = "s3cret-for-tests"


def consuming_ctx(
    io_loop: tornado.ioloop.IOLoop, config: Config, threads: int = 2, **context: Any
) -> Iterator[AppContext]:
    """A multi-user context (see :func:`tests.restapi.bearer`) with ``threads`` job
    consumers; ``context`` goes to :func:`build_context` (e.g. ``job_store``)."""
    built = io_loop.run_sync(lambda: build_context(config, authenticator=HeaderAuthenticator(), **context))
    jobs = built.jobs
    assert jobs is not None

    async def start() -> None:
        jobs.start_consumer(threads)

    io_loop.run_sync(start)
    yield built
    io_loop.run_sync(lambda: jobs.stop_consumer(10.0))
    io_loop.run_sync(lambda: built.lifecycle.join_tasks(10.0))
    io_loop.run_sync(built.aclose)


async def upload(tus: Tus, body: bytes, headers: Mapping[str, str] = ALICE, **meta: str) -> str:
    """A complete upload of ``body`` (one creation-with-upload request); returns its id."""
    h = dict(headers)
    if meta:
        h["Upload-Metadata"] = metadata(**meta)
    res = await tus.create(len(body), headers=h, body=body)
    assert res.code == 201, (res.code, res.body)
    assert int(res.headers["Upload-Offset"]) == len(body)
    return str(res.headers["Location"]).rsplit("/", 1)[-1]


async def post_process(
    client: AsyncHTTPClient,
    base_url: str,
    file_id: str,
    kind: str | None = None,
    headers: Mapping[str, str] = ALICE,
) -> tuple[int, Any]:
    res = await client.fetch(
        f"{base_url}/process/{file_id}",
        method="POST",
        headers=dict(headers),
        body=json.dumps({"kind": kind}) if kind else b"",
        raise_error=False,
        request_timeout=30,
    )
    return res.code, json.loads(res.body)


async def wait_job(
    client: AsyncHTTPClient, base_url: str, job_id: str, statuses: tuple[str, ...] = ("COMPLETED", "FAILED"),
    headers: Mapping[str, str] = ALICE, timeout: float = 30.0,
) -> dict[str, Any]:  # fmt: skip
    """Poll ``GET /jobs/{id}`` until its status is one of ``statuses``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        code, doc = await get_json(client, f"{base_url}/jobs/{job_id}", headers)
        assert code == 200, (code, doc)
        if doc["status"] in statuses:
            return dict(doc)
        assert loop.time() < deadline, f"job {job_id} still {doc['status']} after {timeout}s: {doc}"
        await asyncio.sleep(0.05)


async def wait_state(
    client: AsyncHTTPClient,
    base_url: str,
    file_id: str,
    state: str,
    headers: Mapping[str, str] = ALICE,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll ``/index-status/{id}`` (as ``headers``' user) until ``state``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        code, doc = await get_json(client, f"{base_url}/index-status/{file_id}", headers)
        assert code == 200, (code, doc)
        if doc["state"] == state:
            return dict(doc)
        assert loop.time() < deadline, f"{file_id} still {doc['state']} after {timeout}s: {doc}"
        await asyncio.sleep(0.05)


async def all_rows(
    client: AsyncHTTPClient, base_url: str, file_id: str, limit: int, headers: Mapping[str, str] = ALICE
) -> tuple[list[str], list[dict[str, Any]], int]:
    """Every row of ``file_id`` by following ``next_cursor`` (bounded); ``(columns, rows, total)``."""
    rows: list[dict[str, Any]] = []
    url = f"{base_url}/files/{file_id}/rows?limit={limit}"
    for _ in range(10_000):
        code, page = await get_json(client, url, headers)
        assert code == 200, (code, page)
        assert len(page["rows"]) <= limit
        rows += page["rows"]
        if page["next_cursor"] is None:
            return page["columns"], rows, page["total"]
        url = f"{base_url}/files/{file_id}/rows?limit={limit}&cursor={page['next_cursor']}"
    raise AssertionError("paging did not end")


def csv_bytes(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@dataclass
class Delivery:
    body: bytes
    signature: str
    answered: int


@dataclass
class Receiver:
    """Records deliveries; fails the first one of each event id with 500."""

    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: bytes, signature: str) -> int:
        event_id = json.loads(body)["id"]
        with self.lock:
            seen = any(json.loads(d.body)["id"] == event_id for d in self.deliveries)
            status = 200 if seen else 500
            self.deliveries.append(Delivery(body, signature, status))
        return status

    def delivered_types(self) -> set[str]:
        with self.lock:
            return {json.loads(d.body)["type"] for d in self.deliveries if d.answered == 200}

    def delivered(self, event_type: str) -> list[Delivery]:
        """The 2xx-answered deliveries of ``event_type``."""
        with self.lock:
            return [
                d for d in self.deliveries if d.answered == 200 and json.loads(d.body)["type"] == event_type
            ]


@contextlib.contextmanager
def receiving() -> Iterator[tuple[Receiver, str]]:
    """A :class:`Receiver` listening on loopback, and its URL."""
    record = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = record.answer(body, self.headers.get("Tusd-Signature", ""))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield record, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
