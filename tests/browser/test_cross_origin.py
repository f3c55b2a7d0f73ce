"""The server, unmodified, with the browser build of tus-js-client on a page of
another origin (CORS preflight, exposed ``Location``/``Upload-Offset``).

The other origin is a plain ``http.server`` on another loopback port serving a
blank page and ``node_modules/tus-js-client/dist/tus.min.js`` (``npm ci``).
A server whose ``cors_origins`` allow-list leaves that origin out is refused
by the browser at the preflight. Uppy has the same tests in ``test_uppy.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage, expect_errors
from tests.browser.support import MIB, request, upload_sha256
from tests.e2e.helpers import ROOT, ServerProcess

TUS_JS = ROOT / "node_modules" / "tus-js-client" / "dist" / "tus.min.js"
SIZE = 3 * MIB + 123
UPLOAD_JS = """async ({endpoint, token, size}) => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 255;
  const file = new File([bytes], "cross.bin", {type: "application/octet-stream"});
  const methods = [];
  const url = await new Promise((resolve, reject) => {
    const upload = new tus.Upload(file, {
      endpoint, chunkSize: 1024 * 1024, retryDelays: [],
      headers: {Authorization: `Bearer ${token}`},
      metadata: {filename: file.name, filetype: file.type},
      onBeforeRequest: (req) => methods.push(req.getMethod()),
      onError: reject,
      onSuccess: () => resolve(upload.url),
    });
    upload.start();
  });
  return {url, methods, origin: location.origin};
}"""


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[str]:
    if not TUS_JS.exists():
        pytest.skip(f"{TUS_JS} is missing: run `npm ci` (scripts/test does)")
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(TUS_JS, site / "tus.min.js")
    page = '<!doctype html><title>other</title><link rel="icon" href="data:,">'
    (site / "index.html").write_text(page + '<script src="/tus.min.js"></script>')
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_tus_js_client_uploads_from_another_origin(
    open_page: OpenPage, web_server: ServerProcess, origin: str, other_origin: str
) -> None:
    token = web_server.token("crossorigin")
    page, _ = open_page(None)
    page.goto(f"{other_origin}/")
    expect(page).to_have_title("other")
    result = page.evaluate(UPLOAD_JS, {"endpoint": f"{origin}/files/", "token": token, "size": SIZE})
    assert result["origin"] == other_origin != origin
    assert result["url"].startswith(f"{origin}/files/")
    assert result["methods"] == ["POST", "PATCH", "PATCH", "PATCH", "PATCH"]
    expected = hashlib.sha256(bytes((i * 31 + 7) & 255 for i in range(SIZE))).hexdigest()
    assert upload_sha256(result["url"], token) == (SIZE, expected)


def test_an_origin_off_the_allow_list_is_blocked_by_the_browser(
    open_page: OpenPage, other_origin: str, strict_cors_server: ServerProcess
) -> None:
    server = strict_cors_server
    token = server.token("blocked")
    page, errors = open_page(None)
    expect_errors(errors, "CORS policy", "net::ERR_FAILED")
    page.goto(f"{other_origin}/")
    outcome = page.evaluate(
        """async ({endpoint, token}) => {
            try {
                await fetch(endpoint, {method: "POST", headers: {
                    "Tus-Resumable": "1.0.0", "Upload-Length": "1", Authorization: `Bearer ${token}`}});
                return "allowed";
            } catch (err) { return "blocked"; }
        }""",
        {"endpoint": server.url, "token": token},
    )
    assert outcome == "blocked"
    status, _, body = request(f"{server.url}?limit=10", token=token)
    assert status == 200 and json.loads(body)["items"] == []  # the preflight stopped the POST
