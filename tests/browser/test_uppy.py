"""The server, unmodified, with Uppy (core + Tus plugin) on a page of another origin.

The other origin is a plain ``http.server`` on another loopback port serving a
blank page with Uppy's prebuilt browser bundle
(``node_modules/uppy/dist/uppy.min.js`` + ``uppy.min.css``, installed by
``npm ci``). The page builds ``new Uppy.Uppy().use(Uppy.Tus, ...)`` pointed at
the live server's ``/files/`` with a bearer token header, adds a generated
file with ``uppy.addFile`` and uploads it: once in one PATCH, once with
``chunkSize`` (several PATCHes), and once against a server whose
``cors_origins`` allow-list leaves the page's origin out (the browser blocks
the preflight, nothing is created).
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import OpenPage, expect_errors
from tests.browser.support import MIB, by_name, request, upload_sha256
from tests.browser.test_cross_origin import QuietHandler
from tests.e2e.helpers import ROOT, ServerProcess

UPPY_DIST = ROOT / "node_modules" / "uppy" / "dist"
UPPY_FILES = ("uppy.min.js", "uppy.min.css")
SIZE = 3 * MIB + 321
CHUNK = MIB
PAGE = (
    '<!doctype html><title>uppy</title><link rel="icon" href="data:,">'
    '<link rel="stylesheet" href="/uppy.min.css"><script src="/uppy.min.js"></script>'
)
#: Runs in the page: one Uppy with the Tus plugin, one generated file, one upload.
UPLOAD_JS = """async ({endpoint, token, size, name, chunkSize}) => {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 13 + 5) & 255;
  const methods = [];
  const uppy = new Uppy.Uppy({autoProceed: false});
  const tusOptions = {
    endpoint, retryDelays: [], headers: {Authorization: `Bearer ${token}`},
    onBeforeRequest: (req) => { methods.push(req.getMethod()); },
  };
  if (chunkSize) tusOptions.chunkSize = chunkSize;
  uppy.use(Uppy.Tus, tusOptions);
  let uploadURL = null;
  uppy.on("upload-success", (file, response) => { uploadURL = response.uploadURL; });
  uppy.addFile({name, type: "application/octet-stream", data: new Blob([bytes])});
  const result = await uppy.upload();
  return {
    uploadURL, methods, origin: location.origin,
    successful: result.successful.length,
    failed: result.failed.map((f) => String(f.error)),
  };
}"""


def expected_sha256(size: int) -> str:
    """sha256 of the bytes UPLOAD_JS generates."""
    return hashlib.sha256(bytes((i * 13 + 5) & 255 for i in range(size))).hexdigest()


@pytest.fixture
def uppy_origin(tmp_path: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of another loopback server serving the Uppy page."""
    missing = [name for name in UPPY_FILES if not (UPPY_DIST / name).exists()]
    if missing:
        pytest.skip(f"{UPPY_DIST} lacks {missing}: run `npm ci` (scripts/test does)")
    site = tmp_path / "uppy-site"
    site.mkdir()
    for name in UPPY_FILES:
        shutil.copy(UPPY_DIST / name, site / name)
    (site / "index.html").write_text(PAGE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_uppy(page: Page, page_origin: str, endpoint: str, token: str, name: str, chunk: int | None) -> Any:
    """Open the Uppy page and upload one generated file of SIZE bytes to ``endpoint``."""
    page.goto(f"{page_origin}/")
    expect(page).to_have_title("uppy")
    args = {"endpoint": endpoint, "token": token, "size": SIZE, "name": name, "chunkSize": chunk}
    return page.evaluate(UPLOAD_JS, args)


@pytest.mark.parametrize(
    ("chunk", "patches"),
    [(None, 1), (CHUNK, -(-SIZE // CHUNK))],
    ids=["one-patch", "chunked"],
)
def test_uppy_uploads_from_another_origin(
    open_page: OpenPage,
    web_server: ServerProcess,
    origin: str,
    uppy_origin: str,
    chunk: int | None,
    patches: int,
) -> None:
    token = web_server.token("uppy")
    name = f"uppy-{patches}.bin"
    page, _ = open_page(None)
    result = run_uppy(page, uppy_origin, f"{origin}/files/", token, name, chunk)
    assert result["origin"] == uppy_origin != origin
    assert (result["successful"], result["failed"]) == (1, [])
    assert result["uploadURL"].startswith(f"{origin}/files/")
    assert result["methods"] == ["POST"] + ["PATCH"] * patches
    stored = by_name(origin, token, name)
    assert stored["size"] == SIZE, stored
    assert upload_sha256(result["uploadURL"], token) == (SIZE, expected_sha256(SIZE))


def test_uppy_from_an_origin_off_the_allow_list_is_blocked(
    open_page: OpenPage, uppy_origin: str, strict_cors_server: ServerProcess
) -> None:
    server = strict_cors_server
    token = server.token("uppy-blocked")
    page, errors = open_page(None)
    # Uppy logs the failure it saw as "[Uppy] ... This looks like a network error ..."
    expect_errors(errors, "CORS policy", "net::ERR_FAILED", "This looks like a network error")
    result = run_uppy(page, uppy_origin, server.url, token, "blocked.bin", None)
    assert result["successful"] == 0 and len(result["failed"]) == 1, result
    assert result["methods"] == ["POST"] and result["uploadURL"] is None
    status, _, body = request(f"{server.url}?limit=10", token=token)
    assert status == 200 and json.loads(body)["items"] == []  # the preflight stopped the POST
