"""Processing after upload over HTTP: auto-index of CSV/NDJSON, rows paging,
``POST /process`` (sha256, re-queue of a dead letter), ``GET /jobs``, and the
jobs in the status document. A real SQLite state store, queue and rows db;
the consumer threads run in-process."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
import tornado.websocket
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from tests.http.jobs_support import (
    ALICE,
    all_rows,
    consuming_ctx,
    csv_bytes,
    jobs_overrides,
    post_process,
    upload,
    wait_job,
    wait_state,
)  # fmt: skip
from tests.restapi import bearer, eventually, get_json
from tests.tusclient import Tus, metadata
from tusd_py.core import errors
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

BOB = bearer("bob")
ADMIN = bearer("root", "admin")


@pytest.fixture(params=["sqlite", "redis"])
def config_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Every test on both deployments: SQLite state + SqliteHuey, and Redis for both."""
    return jobs_overrides(
        request.param, lambda: request.getfixturevalue("redis_url"), {"jobs.max_attempts": 2}
    )


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from consuming_ctx(io_loop, tus_config)


def people(n: int) -> list[list[Any]]:
    return [["id", "name", "score", ""]] + [[i, f'n "{i}", x', i / 4, "z" * (i % 3)] for i in range(n)]


@pytest.mark.gen_test(timeout=60)
async def test_csv_upload_is_indexed_and_rows_page_exactly_like_the_file(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    table = people(2500)
    body = csv_bytes(table[:1001]) + b"only,two\n" + csv_bytes(table[1001:])
    file_id = await upload(tus, body, filename="people.csv", filetype="text/csv")
    doc = await wait_state(http_client, base_url, file_id, "ready")
    [job] = doc["jobs"]
    assert job["kind"] == "index" and job["status"] == "COMPLETED" and job["attempts"] == 1
    result = job["result"]
    assert result["rows"] == 2500 and result["malformed"] == 1
    assert result["malformed_lines"] == [{"line": 1002, "reason": "expected 4 fields, got 2"}]
    assert result["columns"] == [
        {"name": "id", "type": "integer"}, {"name": "name", "type": "text"},
        {"name": "score", "type": "real"}, {"name": "column_4", "type": "text"},
    ]  # fmt: skip
    columns, rows, total = await all_rows(http_client, base_url, file_id, limit=333)
    assert columns == ["id", "name", "score", "column_4"] and total == 2500
    expected = [dict(zip(columns, [int(r[0]), r[1], float(r[2]), r[3]], strict=True)) for r in table[1:]]
    assert rows == expected


@pytest.mark.gen_test(timeout=60)
async def test_ndjson_is_indexed_with_the_union_of_keys(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    lines = [json.dumps({"a": i, "b": {"n": i}}) for i in range(5)] + [
        "not json",
        "[1]",
        json.dumps({"c": "x"}),
    ]
    file_id = await upload(tus, "\n".join(lines).encode(), filename="e.bin", filetype="application/x-ndjson")
    doc = await wait_state(http_client, base_url, file_id, "ready")
    result = doc["jobs"][0]["result"]
    assert result["rows"] == 6 and result["malformed"] == 2
    assert [m["line"] for m in result["malformed_lines"]] == [6, 7]
    columns, rows, total = await all_rows(http_client, base_url, file_id, limit=4)
    assert columns == ["a", "b", "c"] and total == 6
    assert rows[0] == {"a": 0, "b": '{"n": 0}', "c": None} and rows[5] == {"a": None, "b": None, "c": "x"}


@pytest.mark.gen_test(timeout=60)
async def test_sha256_job_fills_the_status_checksum(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    body = bytes(range(256)) * 1000
    file_id = await upload(tus, body, filename="blob.bin")
    code, doc = await get_json(http_client, f"{base_url}/index-status/{file_id}", ALICE)
    assert doc["state"] == "complete" and doc["checksum"] is None and doc["jobs"] == []
    code, accepted = await post_process(http_client, base_url, file_id, "sha256")
    assert code == 202, accepted
    assert accepted["file_id"] == file_id and accepted["kind"] == "sha256" and accepted["status"] == "PENDING"
    job = await wait_job(http_client, base_url, accepted["job_id"])
    digest = hashlib.sha256(body).hexdigest()
    assert job["status"] == "COMPLETED" and job["result"]["checksum"] == f"sha256:{digest}"
    doc = await wait_state(http_client, base_url, file_id, "ready")
    assert doc["checksum"] == f"sha256:{digest}"
    assert [j["job_id"] for j in doc["jobs"]] == [accepted["job_id"]]


@pytest.mark.gen_test(timeout=60)
async def test_refusals_are_clear_4xx(tus: Tus, http_client: AsyncHTTPClient, base_url: str) -> None:
    binary = await upload(tus, b"\x00\x01binary", filename="x.bin")
    partial = str(await tus.create_url(10, headers=ALICE)).rsplit("/", 1)[-1]
    cases = [
        (partial, None, ALICE, 409, "ERR_UPLOAD_INCOMPLETE"),
        (binary, None, ALICE, 415, "ERR_FILE_TYPE_NOT_ALLOWED"),
        (binary, "resize", ALICE, 400, "ERR_INVALID_BODY"),
        (binary, "sha256", BOB, 404, "ERR_UPLOAD_NOT_FOUND"),
        ("nope", "sha256", ALICE, 404, "ERR_UPLOAD_NOT_FOUND"),
    ]
    for file_id, kind, who, status, code in cases:
        got, body = await post_process(http_client, base_url, file_id, kind, who)
        assert (got, body["error"]["code"]) == (status, code), (file_id, kind, body)
    got, accepted = await post_process(http_client, base_url, binary, "sha256")
    assert got == 202
    for url, who, status, code in [
        (f"/jobs/{accepted['job_id']}", BOB, 404, "ERR_NOT_FOUND"),
        ("/jobs/ffffffffffffffffffffffffffffffff", ALICE, 404, "ERR_NOT_FOUND"),
        (f"/files/{binary}/rows", ALICE, 404, "ERR_NOT_FOUND"),
        (f"/files/{binary}/rows?limit=0", ALICE, 400, "ERR_INVALID_QUERY"),
        (f"/files/{binary}/rows?cursor=abc", ALICE, 400, "ERR_INVALID_QUERY"),
        (f"/files/{binary}/rows", BOB, 404, "ERR_UPLOAD_NOT_FOUND"),
        (f"/files/{binary}/rows", {}, 401, "ERR_UNAUTHENTICATED"),
    ]:
        got, body = await get_json(http_client, base_url + url, who)
        assert (got, body["error"]["code"]) == (status, code), (url, body)
    got, doc = await get_json(http_client, f"{base_url}/jobs/{accepted['job_id']}", ADMIN)
    assert got == 200 and doc["file_id"] == binary


@pytest.mark.gen_test(timeout=60)
async def test_rows_of_a_public_upload_need_no_token(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    file_id = await upload(tus, b"k\n1\n2\n", filename="t.csv", filetype="text/csv", visibility="public")
    await wait_state(http_client, base_url, file_id, "ready")
    for who in ({}, BOB):
        columns, rows, total = await all_rows(http_client, base_url, file_id, limit=1, headers=who)
        assert (columns, rows, total) == (["k"], [{"k": 1}, {"k": 2}], 2)


@pytest.mark.gen_test(timeout=60)
async def test_dead_letter_after_max_attempts_then_requeued_by_process(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, data_dir: Path
) -> None:
    file_id = await upload(tus, b"a,b\n1,2\n", filename="t.bin")
    stored = data_dir / "uploads" / file_id
    hidden = stored.with_name("hidden")
    stored.rename(hidden)
    code, accepted = await post_process(http_client, base_url, file_id, "sha256")
    assert code == 202
    job = await wait_job(http_client, base_url, accepted["job_id"], ("FAILED",))
    assert job["attempts"] == 2 and job["error"]
    doc = await wait_state(http_client, base_url, file_id, "failed")
    assert doc["jobs"][0]["status"] == "FAILED"
    hidden.rename(stored)
    code, again = await post_process(http_client, base_url, file_id, "sha256")
    assert code == 202 and again["job_id"] == accepted["job_id"] and again["status"] == "PENDING"
    job = await wait_job(http_client, base_url, accepted["job_id"])
    assert job["status"] == "COMPLETED" and job["attempts"] == 1


@pytest.mark.gen_test(timeout=60)
async def test_reindex_replaces_the_table_once(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, data_dir: Path
) -> None:
    file_id = await upload(tus, csv_bytes(people(50)), filename="p.csv", filetype="text/csv")
    await wait_state(http_client, base_url, file_id, "ready")
    code, accepted = await post_process(http_client, base_url, file_id)
    assert code == 202
    await wait_job(http_client, base_url, accepted["job_id"])
    with sqlite3.connect(data_dir / "rows.db") as db:
        count, distinct = db.execute(f"SELECT count(*), count(DISTINCT id) FROM rows_{file_id}").fetchone()
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    assert count == distinct == 50
    assert [t for t in tables if t.startswith("_tmp_")] == []
    assert (await tus.delete(f"/files/{file_id}", ALICE)).code == 204

    async def dropped() -> bool:
        with sqlite3.connect(data_dir / "rows.db") as db:
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            meta = db.execute("SELECT count(*) FROM _indexed WHERE file_id = ?", (file_id,)).fetchone()[0]
        return f"rows_{file_id}" not in names and meta == 0

    await eventually(dropped, what="rows of a terminated upload dropped")


@pytest.mark.gen_test(timeout=60)
async def test_a_csv_name_alone_is_not_auto_indexed_but_may_be_processed(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    file_id = await upload(tus, bytes(range(256)) * 8, filename="random.csv")
    code, doc = await get_json(http_client, f"{base_url}/index-status/{file_id}", ALICE)
    assert doc["state"] == "complete" and doc["jobs"] == []
    code, accepted = await post_process(http_client, base_url, file_id)
    assert code == 202 and accepted["kind"] == "index"
    job = await wait_job(http_client, base_url, accepted["job_id"])
    assert job["status"] == "COMPLETED", job["error"]


@pytest.mark.gen_test(timeout=30)
async def test_job_store_failures_become_503_state_store_errors(ctx: AppContext) -> None:
    assert ctx.jobs is not None

    def broken() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(errors.StateStoreError, match="database is locked"):
        await ctx.jobs.call(broken)


@pytest.mark.gen_test(timeout=60)
async def test_partials_are_not_indexed_but_their_csv_final_is(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    meta = {"Upload-Metadata": metadata(filetype="text/csv"), "Upload-Concat": "partial", **ALICE}
    parts = []
    for piece in (b"a,b\n1,2\n", b"3,4\n"):
        res = await tus.create(len(piece), headers=meta, body=piece)
        assert res.code == 201
        parts.append(str(res.headers["Location"]).rsplit("/", 1)[-1])
    concat = "final;" + " ".join(f"/files/{p}" for p in parts)
    final = await tus.request(
        "POST",
        tus.collection,
        {**ALICE, "Upload-Metadata": metadata(filetype="text/csv"), "Upload-Concat": concat},
    )
    assert final.code == 201, final.body
    final_id = str(final.headers["Location"]).rsplit("/", 1)[-1]
    await wait_state(http_client, base_url, final_id, "ready")
    columns, rows, total = await all_rows(http_client, base_url, final_id, limit=10)
    assert (columns, rows, total) == (["a", "b"], [{"a": 1, "b": 2}, {"a": 3, "b": 4}], 2)
    for part in parts:
        code, doc = await get_json(http_client, f"{base_url}/index-status/{part}", ALICE)
        assert code == 200 and doc["jobs"] == [], doc


@pytest.mark.gen_test(timeout=60)
async def test_job_states_reach_the_owners_live_socket(tus: Tus, base_url: str) -> None:
    """The index job of an uploaded CSV is pushed on ``/events`` to its owner:
    processing, then completed, with the upload id and job id."""
    request = HTTPRequest(base_url.replace("http://", "ws://") + "/events", headers=dict(ALICE))
    ws = await tornado.websocket.websocket_connect(request)
    try:
        first = json.loads(await ws.read_message() or "{}")
        assert first["type"] == "ready", first
        file_id = await upload(tus, csv_bytes(people(20)), filename="p.csv", filetype="text/csv")
        seen: list[dict[str, Any]] = []
        for _ in range(200):  # bounded: each read has its own timeout
            raw = await asyncio.wait_for(ws.read_message(), 30)
            assert raw is not None, f"socket closed; seen {seen}"
            message = json.loads(raw)
            if str(message["type"]).startswith("job."):
                seen.append(message)
                if message["type"] in ("job.completed", "job.failed"):
                    break
        assert seen[-1]["type"] == "job.completed", seen
        assert {m["upload_id"] for m in seen} == {file_id} and seen[-1]["kind"] == "index"
        assert "job.processing" in [m["type"] for m in seen], seen
    finally:
        ws.close()


@pytest.mark.gen_test(timeout=60)
async def test_the_listing_shows_each_uploads_jobs(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str
) -> None:
    file_id = await upload(tus, csv_bytes(people(10)), filename="l.csv", filetype="text/csv")
    await wait_state(http_client, base_url, file_id, "ready")
    status, listing = await get_json(http_client, base_url + "/files/", ALICE)
    assert status == 200, listing
    [item] = [i for i in listing["items"] if i["file_id"] == file_id]
    assert item["state"] == "ready", item
    assert [(j["kind"], j["status"]) for j in item["jobs"]] == [("index", "COMPLETED")]


@pytest.mark.gen_test(timeout=60)
async def test_an_auto_queued_index_job_runs_at_the_uploaders_tier_priority(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, ctx: AppContext
) -> None:
    assert ctx.jobs is not None
    body = csv_bytes(people(3))
    premium = await upload(tus, body, bearer("carol", "premium"), filename="p.csv", filetype="text/csv")
    basic = await upload(tus, body, filename="b.csv", filetype="text/csv")
    for file_id, who in ((premium, bearer("carol", "premium")), (basic, bearer("alice"))):
        await wait_state(http_client, base_url, file_id, "ready", who)
    [premium_job] = await ctx.jobs.call(ctx.jobs.store.for_file, premium)
    [basic_job] = await ctx.jobs.call(ctx.jobs.store.for_file, basic)
    assert premium_job.priority > basic_job.priority == 0
