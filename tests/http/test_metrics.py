"""``/metrics`` and the lifecycle log lines for what the subprocess test
cannot provoke: refused (failed) uploads, throttled requests, and the
per-context registry."""

from __future__ import annotations

import json
import logging

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.e2e.serverproc import metric_values
from tests.tusclient import Tus
from tusd_py.core import errors
from tusd_py.core.models import Principal, UploadInfo
from tusd_py.ops.context import AppContext
from tusd_py.ops.logs import JsonFormatter
from tusd_py.ops.metrics import Metrics
from tusd_py.throttle.base import RequestKind, StreamSlot


class RefuseEverything:
    """A content inspector that refuses every upload (→ upload.failed)."""

    async def inspect(self, info: UploadInfo, head: bytes) -> str | None:
        raise errors.UnsupportedMediaType("no files of this kind here")


class StrictGuard:
    """Rate-limits creations and has no stream slots left."""

    async def check(self, kind: RequestKind, principal: Principal | None, client_ip: str) -> dict[str, str]:
        if kind == "create":
            raise errors.RateLimited("too many uploads", retry_after=3)
        return {}

    async def open_stream(self, principal: Principal, client_ip: str) -> StreamSlot:
        raise errors.ServerBusy()

    async def close(self) -> None:
        return None


async def scrape(
    client: AsyncHTTPClient, base_url: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    res = await client.fetch(base_url + "/metrics")
    assert res.headers["Content-Type"].startswith("text/plain")
    return metric_values(res.body.decode())


@pytest.mark.gen_test
async def test_refused_upload_counts_as_failed_and_is_logged(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    ctx.service.inspector = RefuseEverything()
    tus = Tus(http_client, base_url)
    url = await tus.create_url(4)
    with caplog.at_level(logging.INFO, logger="tusd_py.app"):
        res = await tus.patch(url, 0, b"MZ\x90\x00")
    assert res.code == 415
    values = await scrape(http_client, base_url)
    assert values[("tusd_py_uploads_failed_total", ())] == 1
    assert values[("tusd_py_uploads_created_total", ())] == 1
    failed = [r for r in caplog.records if getattr(r, "event", None) == "UploadFailed"]
    assert len(failed) == 1
    line = json.loads(JsonFormatter().format(failed[0]))
    assert line["upload_id"] == url.rsplit("/", 1)[1] and line["user"] == "local"
    assert line["detail"] == "no files of this kind here"


@pytest.mark.gen_test
async def test_throttled_requests_are_counted_by_status_and_code(
    http_client: AsyncHTTPClient, base_url: str, ctx: AppContext
) -> None:
    tus = Tus(http_client, base_url)
    url = await tus.create_url(4)
    ctx.guard = StrictGuard()
    assert (await tus.create(4)).code == 429
    assert (await tus.create(4)).code == 429
    assert (await tus.patch(url, 0, b"data")).code == 503
    values = await scrape(http_client, base_url)
    throttled = "tusd_py_throttled_requests_total"
    assert values[(throttled, (("code", "ERR_RATE_LIMITED"), ("status", "429")))] == 2
    assert values[(throttled, (("code", "ERR_SERVER_BUSY"), ("status", "503")))] == 1
    assert values[("tusd_py_requests_total", (("method", "POST"), ("status", "429")))] == 2


def test_each_metrics_object_has_its_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.observe_request("PATCH", 204, None, 0.2)
    one.observe_request("BREW", 405, "ERR_METHOD_NOT_ALLOWED", 0.0)
    one.observe_s3_part(0.3, ok=True)
    one.s3_queue_changed(+2)
    first = metric_values(one.exposition()[0].decode())
    second = metric_values(two.exposition()[0].decode())
    assert first[("tusd_py_requests_total", (("method", "PATCH"), ("status", "204")))] == 1
    assert first[("tusd_py_requests_total", (("method", "OTHER"), ("status", "405")))] == 1
    assert first[("tusd_py_patch_duration_seconds_count", ())] == 1
    assert first[("tusd_py_s3_part_duration_seconds_count", (("outcome", "ok"),))] == 1
    assert first[("tusd_py_s3_queue_depth", ())] == 2
    assert ("tusd_py_requests_total", (("method", "PATCH"), ("status", "204"))) not in second
    assert second[("tusd_py_s3_queue_depth", ())] == 0
