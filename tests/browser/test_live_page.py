"""Live progress on the page: a second page of the same user (another browser
context: another device) follows the first page's upload through the
``/events`` WebSocket, under the page's CSP (``default-src 'self'`` covers the
same-origin socket; a refused connection would be a console error, which
fails the test); without the socket, the list is polled instead."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from playwright.sync_api import WebSocket, WebSocketRoute, expect

from tests.browser.conftest import OpenPage, expect_errors
from tests.browser.support import MIB, patch, request, until
from tests.browser.test_uploads import PatchGate
from tests.e2e.helpers import ServerProcess, make_file


def test_second_page_sees_the_first_pages_upload_progress_via_the_socket(
    open_page: OpenPage, web_server: ServerProcess, tmp_path: Path
) -> None:
    token = web_server.token("live-watcher")
    path = tmp_path / "shared.bin"
    make_file(path, 4 * MIB, seed=5)

    watcher, _ = open_page(token)
    frames: list[dict[str, Any]] = []

    def on_socket(socket: WebSocket) -> None:
        assert socket.url.endswith("/events"), socket.url
        socket.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    watcher.on("websocket", on_socket)
    watcher.reload()  # the token stays in sessionStorage; the socket now opens under watch
    expect(watcher.locator("#library")).to_have_attribute("data-live", "on")

    uploader, _ = open_page(token, chunk_size=MIB)
    gate = PatchGate(allow=2)
    uploader.route("**/files/*", gate)
    uploader.get_by_label("choose files").set_input_files(path)
    until(uploader, lambda: gate.held, "the 3rd PATCH to be held")
    upload_id = uploader.locator('li.upload[data-name="shared.bin"]').get_attribute("data-id")
    assert upload_id

    def mine() -> list[dict[str, Any]]:
        return [f for f in frames if f.get("upload_id") == upload_id]

    # the last offset arrives even when throttled (held back to the end of its 250 ms window)
    until(
        watcher,
        lambda: any(f["type"] == "upload.progress" and f["offset"] == 2 * MIB for f in mine()),
        "the watcher's socket to carry the 2 MiB progress",
    )
    assert mine()[0]["type"] == "upload.created", mine()
    row = watcher.locator(f'#files-body tr[data-id="{upload_id}"]')
    expect(row).to_have_attribute("data-offset", str(2 * MIB))
    expect(row.locator(".state-uploading")).to_have_text("uploading 50 %")
    assert {f["type"] for f in frames} <= {"ready", "upload.created", "upload.progress"}, frames

    gate.allow = 1 << 30
    for held in gate.held:
        held.continue_()
    expect(uploader.locator('li.upload[data-name="shared.bin"]')).to_have_attribute("data-state", "complete")
    expect(row).to_have_attribute("data-state", "complete")
    assert any(f["type"] == "upload.finished" and f["upload_id"] == upload_id for f in frames)


def test_without_the_socket_the_list_falls_back_to_polling(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path
) -> None:
    token = web_server.token("live-fallback")
    path = tmp_path / "polled.bin"
    make_file(path, 4 * MIB, seed=6)
    uploader, _ = open_page(token, chunk_size=MIB)
    gate = PatchGate(allow=1)
    uploader.route("**/files/*", gate)
    uploader.get_by_label("choose files").set_input_files(path)
    until(uploader, lambda: gate.held, "the 2nd PATCH to be held")
    upload_id = uploader.locator('li.upload[data-name="polled.bin"]').get_attribute("data-id")

    watcher, errors = open_page(None)
    expect_errors(errors, "WebSocket")
    refused: list[str] = []

    def refuse(socket: WebSocketRoute) -> None:
        refused.append(socket.url)
        socket.close(code=1011, reason="refused by the test")

    watcher.route_web_socket("**/events", refuse)
    watcher.goto(f"{origin}/?no-socket#token={token}")  # a new document, under the route
    row = watcher.locator(f'#files-body tr[data-id="{upload_id}"]')
    expect(row).to_have_attribute("data-offset", str(MIB))
    until(watcher, lambda: refused, "the page to try the socket")
    expect(watcher.locator("#library")).not_to_have_attribute("data-live", "on")

    gate.held.pop(0).continue_()  # one more MiB; the next PATCH is held again
    expect(row).to_have_attribute("data-offset", str(2 * MIB))  # from the list, polled every 3 s
    gate.allow = 1 << 30
    for held in gate.held:
        held.continue_()
    expect(row).to_have_attribute("data-state", "complete")


def test_a_reload_of_the_list_keeps_the_keyboard_on_its_button(
    open_page: OpenPage, web_server: ServerProcess, origin: str
) -> None:
    """A live event reloads the list (new rows replace the old ones); a keyboard
    user's focus on a row's button moves to the same button of the new row
    instead of falling back to the page."""
    token = web_server.token("live-focus")

    def upload(name: str) -> None:
        metadata = "filename " + base64.b64encode(name.encode()).decode()
        status, headers, _ = request(
            f"{origin}/files/", "POST", token, {"Upload-Length": "4", "Upload-Metadata": metadata}
        )
        assert status == 201
        assert patch(headers["location"], token, 0, b"data") == 204

    upload("first.bin")
    page, _ = open_page(token)
    expect(page.locator("#library")).to_have_attribute("data-live", "on")
    download = page.get_by_role("button", name="Download first.bin")
    download.focus()
    page.locator("#files-body tr.file").filter(has_text="first.bin").evaluate(
        "tr => { tr.dataset.old = '1'; }"
    )

    upload("second.bin")  # upload.created / finished on the socket: the list reloads
    expect(page.locator("#files-body tr.file").filter(has_text="second.bin")).to_have_count(1)
    expect(page.locator("#files-body tr.file[data-old]")).to_have_count(0)  # the row was replaced
    expect(download).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Delete first.bin")).to_be_focused()
