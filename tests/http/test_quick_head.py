"""The common tus HEAD answered below the handler (handlers/quickhead.py):
routed there only when it qualifies, and answered exactly as the
``UploadHandler`` answers it (a second server on the same context with
``quick_head=False`` is the reference)."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import tornado.httpserver
import tornado.httputil
import tornado.ioloop
import tornado.testing
import tornado.web
from tornado.httpclient import HTTPResponse

from handlers.app import make_app
from handlers.quickhead import QuickHead
from tests.http.raw import request_head
from tests.tusclient import Tus, metadata
from tusd_py.cli.server import http_server as make_http_server
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

UPLOAD = "/files/0123456789abcdef0123456789abcdef"
#: Differ per response by nature.
VARYING = {"Date", "X-Request-Id"}


@pytest.fixture
def handler_url(io_loop: tornado.ioloop.IOLoop, ctx: AppContext, tus_config: Config) -> Iterator[str]:
    """A second server on the same context, every HEAD through the handler."""
    server = make_http_server(make_app(ctx, quick_head=False), tus_config)
    sock, port = tornado.testing.bind_unused_port(address="127.0.0.1")
    server.add_socket(sock)
    yield f"http://127.0.0.1:{port}"
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=10)


def request(method: str, uri: str, **headers: str) -> tornado.httputil.HTTPServerRequest:
    return tornado.httputil.HTTPServerRequest(
        start_line=tornado.httputil.RequestStartLine(method, uri, "HTTP/1.1"),
        headers=tornado.httputil.HTTPHeaders({"Host": "127.0.0.1", **headers}),
    )


@pytest.mark.parametrize(
    ("method", "headers", "quick"),
    [
        ("HEAD", {"Tus-Resumable": "1.0.0"}, True),
        ("HEAD", {"Tus-Resumable": "1.0.0", "X-Request-ID": "abc"}, True),
        ("HEAD", {"Tus-Resumable": "1.0.0", "Origin": "https://a.example"}, False),  # CORS
        ("HEAD", {}, False),  # 412 (or the IETF draft)
        ("HEAD", {"Tus-Resumable": "0.2.2"}, False),
        ("HEAD", {"Tus-Resumable": "1.0.0", "Content-Length": "3"}, False),
        ("HEAD", {"Tus-Resumable": "1.0.0", "Transfer-Encoding": "chunked"}, False),
        ("POST", {"Tus-Resumable": "1.0.0", "X-HTTP-Method-Override": "HEAD"}, False),
        ("GET", {"Tus-Resumable": "1.0.0"}, False),
    ],
)
def test_only_a_plain_tus_head_of_an_upload_takes_the_quick_path(
    app: tornado.web.Application, method: str, headers: dict[str, str], quick: bool
) -> None:
    delegate = app.find_handler(request(method, UPLOAD, **headers))
    assert isinstance(delegate, QuickHead) is quick


@pytest.mark.parametrize("uri", ["/files/", "/files/abc/link", "/healthz", "/files/%ff"])
def test_other_routes_never_take_it(app: tornado.web.Application, uri: str) -> None:
    assert not isinstance(app.find_handler(request("HEAD", uri, **{"Tus-Resumable": "1.0.0"})), QuickHead)


def test_the_setting_turns_it_off(ctx: AppContext) -> None:
    app = make_app(ctx, quick_head=False)
    assert not isinstance(app.find_handler(request("HEAD", UPLOAD, **{"Tus-Resumable": "1.0.0"})), QuickHead)


def comparable(res: HTTPResponse) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in res.headers.get_all() if k not in VARYING}
    return res.code, headers, res.body


async def both(tus: Tus, handler_url: str, url: str, **headers: str) -> tuple[Any, Any]:
    quick = await tus.head(url, headers)
    slow = await tus.head(handler_url + urlsplit(url).path, headers)
    return comparable(quick), comparable(slow)


@pytest.mark.gen_test
async def test_answers_exactly_as_the_handler(tus: Tus, handler_url: str) -> None:
    fresh = await tus.create_url(10, headers={"Upload-Metadata": metadata(filename="a.txt")})
    partial = await tus.create_url(6)
    assert (await tus.patch(partial, 0, b"abc")).code == 204
    complete = await tus.create_url(2)
    assert (await tus.patch(complete, 0, b"ab")).code == 204
    deferred = await tus.create_url(None)
    part = await tus.create_url(3, headers={"Upload-Concat": "partial"})
    created = await tus.request("POST", tus.collection, {"Upload-Concat": f"final;{urlsplit(part).path}"})
    assert created.code == 201, created.body
    final = str(created.headers["Location"])
    for url in (fresh, partial, complete, deferred, part, final, tus.base_url + UPLOAD):
        quick, slow = await both(tus, handler_url, url)
        assert quick == slow, url
        assert quick[0] in (200, 404)
    quick, slow = await both(tus, handler_url, fresh, **{"X-Request-ID": "trace-1"})
    assert quick == slow
    res = await tus.head(fresh, {"X-Request-ID": "trace-1"})
    assert res.headers["X-Request-ID"] == "trace-1"
    assert res.headers["Upload-Offset"] == "0"
    slow_res = await tus.head(handler_url + urlsplit(fresh).path)
    for answer in (res, slow_res):  # the Date formatted once a second is now's
        sent = email.utils.parsedate_to_datetime(answer.headers["Date"]).timestamp()
        assert abs(sent - time.time()) < 5


@pytest.mark.gen_test
async def test_writes_the_same_access_line_and_metrics(
    tus: Tus, handler_url: str, ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    url = await tus.create_url(10)
    with caplog.at_level(logging.INFO, logger="tusd_py.access"):
        quick = await tus.head(url)
        slow = await tus.head(handler_url + urlsplit(url).path)
    lines = [r for r in caplog.records if r.name == "tusd_py.access" and r.getMessage().startswith("HEAD")]
    assert len(lines) == 2
    fields = [
        {
            k: v
            for k, v in vars(r).items()
            if k in ("method", "path", "status", "user", "upload_id", "bytes", "remote", "code", "msg")
        }
        for r in lines
    ]
    assert fields[0] == fields[1]
    assert [getattr(r, "request_id", None) for r in lines] == [
        quick.headers["X-Request-ID"],
        slow.headers["X-Request-ID"],
    ]
    assert ctx.metrics.requests.labels("HEAD", "200")._value.get() == 2


@pytest.mark.gen_test
async def test_keeps_the_connection_alive_across_answers_and_hand_overs(tus: Tus, connect: Any) -> None:
    """Quick answers and handed-over ones (404, 412 via a missing header is not
    quick, so a 404 stands for the hand-over) follow each other on one connection."""
    url = await tus.create_url(10)
    conn = await connect()
    path = urlsplit(url).path
    statuses = []
    for target in (path, path, UPLOAD, path):
        await conn.send(request_head("HEAD", target, {"Tus-Resumable": "1.0.0"}))
        res = await conn.read_response("HEAD")
        assert res.header("Connection") != "close"
        statuses.append((res.status, res.header("Upload-Offset")))
    pipelined = request_head("HEAD", path, {"Tus-Resumable": "1.0.0"}) * 2
    await conn.send(pipelined)
    statuses += [
        ((r := await conn.read_response("HEAD")).status, r.header("Upload-Offset")) for _ in range(2)
    ]
    assert statuses == [(200, "0"), (200, "0"), (404, None), (200, "0"), (200, "0"), (200, "0")]
