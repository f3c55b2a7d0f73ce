"""Job records do not pile up: finished jobs go after the retention (with the
rows table their ``index`` job published), active ones never; a terminated
upload's jobs and rows go at once. Both
deployments (SQLite; Redis for state, queue and jobs), consumer in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient

from tests.http.jobs_support import (
    ALICE,
    consuming_ctx,
    csv_bytes,
    jobs_overrides,
    post_process,
    upload,
    wait_job,
)
from tests.restapi import eventually, get_json
from tests.tusclient import Tus
from tusd_py.core.config import Config
from tusd_py.jobs.system import JobSystem
from tusd_py.ops.context import AppContext

#: ``[jobs] retention`` of these tests (seconds; the default is 30 days).
RETENTION = 3 * 3600.0


@pytest.fixture(params=["sqlite", "redis"])
def config_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    return jobs_overrides(
        request.param,
        lambda: request.getfixturevalue("redis_url"),
        {"jobs.max_attempts": 1, "jobs.retention": RETENTION},
    )


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config) -> Iterator[AppContext]:
    yield from consuming_ctx(io_loop, tus_config)


def jobs_of(ctx: AppContext) -> JobSystem:
    assert ctx.jobs is not None
    return ctx.jobs


async def indexed(tus: Tus, client: AsyncHTTPClient, base_url: str, rows: int) -> tuple[str, dict[str, Any]]:
    """A CSV upload and its finished ``index`` job document."""
    file_id = await upload(tus, csv_bytes([["n"], *[[i] for i in range(rows)]]), filename="t.csv")
    code, accepted = await post_process(client, base_url, file_id)
    assert code == 202
    return file_id, await wait_job(client, base_url, accepted["job_id"], ("COMPLETED",))


@pytest.mark.gen_test(timeout=60)
async def test_finished_jobs_and_their_rows_are_pruned_after_the_retention(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, data_dir: Path
) -> None:
    jobs = jobs_of(ctx)
    old_file, old_index = await indexed(tus, http_client, base_url, 3)
    broken = await upload(tus, b"bytes", filename="x.bin")
    (data_dir / "uploads" / broken).unlink()
    code, dead = await post_process(http_client, base_url, broken, "sha256")  # a dead letter
    assert code == 202
    await wait_job(http_client, base_url, dead["job_id"], ("FAILED",))
    ended = max(
        [j.updated_at for j in await jobs.call(jobs.store.for_file, old_file)]
        + [j.updated_at for j in await jobs.call(jobs.store.for_file, broken)]
    )
    new_file, new_index = await indexed(tus, http_client, base_url, 2)
    await jobs.stop_consumer()  # a job queued now stays PENDING
    waiting = await upload(tus, b"0123", filename="w.bin")
    code, pending = await post_process(http_client, base_url, waiting, "sha256")
    assert code == 202

    assert await jobs.call(jobs.prune, ended + RETENTION - 1) == 0
    # Just after the old ones' retention, before the new one's.
    assert await jobs.call(jobs.prune, ended + RETENTION + 1e-3) == 2
    for job_id in (old_index["job_id"], dead["job_id"]):
        assert (await get_json(http_client, f"{base_url}/jobs/{job_id}", ALICE))[0] == 404
    code, doc = await get_json(http_client, f"{base_url}/files/{old_file}/rows", ALICE)
    assert code == 404, doc
    code, status = await get_json(http_client, f"{base_url}/index-status/{old_file}", ALICE)
    assert code == 200 and status["jobs"] == [] and status["state"] == "complete"
    code, page = await get_json(http_client, f"{base_url}/files/{new_file}/rows", ALICE)
    assert code == 200 and page["total"] == 2
    assert (await get_json(http_client, f"{base_url}/jobs/{new_index['job_id']}", ALICE))[0] == 200

    # Years later: every finished job goes, the PENDING one stays.
    assert await jobs.call(jobs.prune, ended + 100 * RETENTION) == 1
    assert (await get_json(http_client, f"{base_url}/files/{new_file}/rows", ALICE))[0] == 404
    code, doc = await get_json(http_client, f"{base_url}/jobs/{pending['job_id']}", ALICE)
    assert code == 200 and doc["status"] == "PENDING", doc


@pytest.mark.gen_test(timeout=60)
async def test_a_terminated_uploads_jobs_and_rows_go_with_it(
    tus: Tus, http_client: AsyncHTTPClient, base_url: str, ctx: AppContext
) -> None:
    jobs = jobs_of(ctx)
    file_id, index = await indexed(tus, http_client, base_url, 4)
    code, digest = await post_process(http_client, base_url, file_id, "sha256")
    assert code == 202
    await wait_job(http_client, base_url, digest["job_id"], ("COMPLETED",))
    kept, _ = await indexed(tus, http_client, base_url, 1)
    assert (await tus.delete(f"/files/{file_id}", ALICE)).code == 204

    async def forgotten() -> bool:
        return await jobs.call(jobs.store.for_file, file_id) == []

    await eventually(forgotten, what="jobs of a terminated upload deleted")
    assert await jobs.call(jobs.rows.page, file_id, 0, 10) is None
    assert await jobs.call(jobs.store.get, index["job_id"]) is None
    assert [j.kind for j in await jobs.call(jobs.store.for_file, kept)] == ["index"]
    assert (await get_json(http_client, f"{base_url}/files/{kept}/rows", ALICE))[0] == 200
