"""Uploading from the page in a real browser: resume after reload, pause/resume,
several files at once, and a refusal shown in words.

PATCHes are held deterministically with Playwright route interception (a
held request never reaches the server), never with sleeps; bytes are checked
by sha256 of what the server serves back.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Request, Route, expect

from tests.browser.conftest import TIMEOUT_MS, OpenPage, expect_errors
from tests.browser.support import MIB, by_name, listing, patch, request, until, upload_sha256
from tests.e2e.helpers import ServerProcess, make_file


class PatchGate:
    """Route handler letting the first ``allow`` PATCHes through and holding the rest."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.passed = 0
        self.held: list[Route] = []
        self.lock = threading.Lock()

    def __call__(self, route: Route) -> None:
        if route.request.method == "PATCH":
            with self.lock:
                if self.passed >= self.allow:
                    self.held.append(route)
                    return
                self.passed += 1
        route.continue_()


def patch_offsets(requests: list[Request]) -> list[int]:
    return [int(r.headers["upload-offset"]) for r in requests if r.method == "PATCH"]


def test_reload_midway_resumes_from_the_server_offset(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path, artifacts: Path
) -> None:
    token = web_server.token("reloader")
    path = tmp_path / "big.bin"
    digest = make_file(path, 20 * MIB, seed=7)
    page, _ = open_page(token, chunk_size=MIB)
    gate = PatchGate(allow=8)
    page.route("**/files/*", gate)
    page.get_by_label("choose files").set_input_files(path)
    row = page.locator('li.upload[data-name="big.bin"]')
    expect(row).to_have_attribute("data-state", "uploading")
    until(page, lambda: gate.held, "the 9th PATCH to be held")
    upload_url = f"{origin}/files/{row.get_attribute('data-id')}"
    status, headers, _ = request(upload_url, "HEAD", token)
    assert status == 200 and headers["upload-offset"] == str(8 * MIB)
    page.screenshot(path=str(artifacts / "page-mid-upload.png"), full_page=True)

    page.reload()  # the held PATCH dies with the page; later ones go through
    gate.allow = 1 << 30
    pending = page.locator('#pending-list li[data-name="big.bin"]')
    expect(pending).to_be_visible()
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r))
    page.get_by_label("choose files").set_input_files(path)
    expect(page.locator('li.upload[data-name="big.bin"]')).to_have_attribute("data-state", "complete")
    assert not any(r.method == "POST" for r in sent), "a new upload was created instead of resuming"
    offsets = patch_offsets(sent)
    assert offsets[0] == 8 * MIB, offsets
    assert offsets == [8 * MIB + i * MIB for i in range(12)]
    assert upload_sha256(upload_url, token) == (20 * MIB, digest)
    expect(pending).to_have_count(0)
    assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('tusd-py.upload:'))") == []


def test_pause_then_resume_continues_where_the_server_stopped(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path
) -> None:
    token = web_server.token("pauser")
    path = tmp_path / "pause.bin"
    digest = make_file(path, 6 * MIB, seed=3)
    page, _ = open_page(token, chunk_size=MIB)
    gate = PatchGate(allow=2)
    page.route("**/files/*", gate)
    page.get_by_label("choose files").set_input_files(path)
    until(page, lambda: gate.held, "the 3rd PATCH to be held")
    row = page.locator('li.upload[data-name="pause.bin"]')
    row.get_by_role("button", name="Pause pause.bin").click()
    expect(row).to_have_attribute("data-state", "paused")
    expect(row.locator(".message")).to_have_text("Paused.")
    upload_url = f"{origin}/files/{row.get_attribute('data-id')}"
    assert request(upload_url, "HEAD", token)[1]["upload-offset"] == str(2 * MIB)

    page.unroute("**/files/*")
    sent: list[Request] = []
    page.on("request", lambda r: sent.append(r))
    row.get_by_role("button", name="Resume pause.bin").click()
    expect(row).to_have_attribute("data-state", "complete")
    # the upload's own requests (the list may poll other URLs meanwhile): HEAD first
    assert [r.method for r in sent if r.url.startswith(upload_url)][0] == "HEAD"
    assert patch_offsets(sent) == [2 * MIB, 3 * MIB, 4 * MIB, 5 * MIB]
    assert upload_sha256(upload_url, token) == (6 * MIB, digest)
    expect(row.locator(".stats")).to_contain_text("6 MiB uploaded in")


def test_two_files_at_once_both_arrive_and_are_listed(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path
) -> None:
    token = web_server.token("pair")
    first, second = tmp_path / "one.bin", tmp_path / "two.bin"
    digests = {"one.bin": make_file(first, 3 * MIB + 17, seed=1), "two.bin": make_file(second, MIB, seed=2)}
    page, _ = open_page(token, chunk_size=MIB)
    started: list[str] = []
    page.on("request", lambda r: started.append(r.url) if r.method == "POST" else None)
    page.get_by_label("choose files").set_input_files([first, second])
    for name in digests:
        expect(page.locator(f'li.upload[data-name="{name}"]')).to_have_attribute("data-state", "complete")
    assert len(started) == 2
    for name, digest in digests.items():
        doc = by_name(origin, token, name)
        assert doc["state"] == "complete"
        assert upload_sha256(f"{origin}{doc['upload_url']}", token)[1] == digest
        expect(page.locator(f'#files-body tr[data-id="{doc["file_id"]}"]')).to_contain_text(name)


def test_over_the_size_limit_is_refused_in_words(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path
) -> None:
    token = web_server.token("bigspender")
    path = tmp_path / "huge.bin"
    with open(path, "wb") as handle:
        handle.truncate((1 << 30) + 1)  # sparse: one byte over the basic tier's 1 GiB
    page, errors = open_page(token)
    expect_errors(errors, "status of 413")
    page.get_by_label("choose files").set_input_files(path)
    row = page.locator('li.upload[data-name="huge.bin"]')
    expect(row).to_have_attribute("data-state", "failed")
    expect(row.locator(".message")).to_have_text("Too large: over your 1 GiB limit.")
    expect(row.get_by_role("button", name="Pause huge.bin")).to_be_hidden()
    status, _, body = request(f"{origin}/files/?limit=100", token=token)
    assert status == 200 and b"huge.bin" not in body


def test_a_refused_file_type_is_named(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path
) -> None:
    token = web_server.token("typist")
    path = tmp_path / "tool.bin"
    path.write_bytes(Path("/bin/true").read_bytes())  # an ELF executable: denied by default
    page, errors = open_page(token)
    # 415, then a 404 when the list fetches the status of the upload the refusal terminated
    expect_errors(errors, "status of 415", "status of 404")
    page.get_by_label("choose files").set_input_files(path)
    row = page.locator('li.upload[data-name="tool.bin"]')
    expect(row).to_have_attribute("data-state", "failed")
    expect(row.locator(".message")).to_contain_text("File type not allowed (application/")
    assert all(d["filename"] != "tool.bin" for d in listing(origin, token))


def test_too_many_creations_say_when_to_try_again(
    open_page: OpenPage, tmp_path: Path, chromium: Browser
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    server = ServerProcess(
        data, tmp_path / "server.log", ["--throttle-basic-creations-per-minute", "1"], auth=True
    )
    try:
        token = server.token("hasty")
        first, second = tmp_path / "a.bin", tmp_path / "b.bin"
        make_file(first, 1000, seed=1)
        make_file(second, 1000, seed=2)
        page = chromium.new_page()
        try:
            page.on("pageerror", lambda exc: pytest.fail(str(exc)))
            page.goto(f"{server.url.removesuffix('/files/')}/#token={token}")
            page.get_by_label("choose files").set_input_files([first, second])
            waiting = page.locator("li.upload .message").filter(has_text="Too many requests: try again in")
            expect(waiting).to_have_count(1, timeout=TIMEOUT_MS)
            assert re.fullmatch(r"Too many requests: try again in \d+ s\.", waiting.inner_text())
            expect(page.locator('li.upload[data-state="complete"]')).to_have_count(1, timeout=TIMEOUT_MS)
        finally:
            page.close()
    finally:
        server.stop()


def test_progress_of_an_upload_made_elsewhere_is_polled(
    open_page: OpenPage, web_server: ServerProcess, origin: str
) -> None:
    token = web_server.token("elsewhere")
    status, headers, _ = request(
        f"{origin}/files/",
        "POST",
        token,
        {"Upload-Length": str(2 * MIB), "Upload-Metadata": "filename b3RoZXIuYmlu"},
    )
    assert status == 201
    url = headers["location"]
    body = bytes(range(256)) * (MIB // 256)
    assert patch(url, token, 0, body) == 204
    page, _ = open_page(token)
    row = page.locator("#files-body tr").filter(has_text="other.bin")
    expect(row.locator('td[data-label="State"]')).to_have_text("uploading 50 %")
    assert patch(url, token, MIB, body) == 204
    expect(row.locator('td[data-label="State"]')).to_have_text("complete", timeout=TIMEOUT_MS)


def test_cancel_deletes_the_upload_on_the_server(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path
) -> None:
    token = web_server.token("canceller")
    path = tmp_path / "gone.bin"
    make_file(path, 3 * MIB, seed=9)
    page, _ = open_page(token, chunk_size=MIB)
    gate = PatchGate(allow=1)
    page.route("**/files/*", gate)
    page.get_by_label("choose files").set_input_files(path)
    until(page, lambda: gate.held, "the 2nd PATCH to be held")
    row = page.locator('li.upload[data-name="gone.bin"]')
    upload_url = f"{origin}/files/{row.get_attribute('data-id')}"
    deleted: list[Request] = []
    page.on("request", lambda r: deleted.append(r) if r.method == "DELETE" else None)
    row.get_by_role("button", name="Cancel gone.bin").click()
    expect(row).to_have_count(0)
    assert [r.url for r in deleted] == [upload_url]
    assert request(upload_url, "HEAD", token)[0] in (404, 410)
    assert page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('tusd-py.upload:'))") == []


def test_dropped_files_are_uploaded(open_page: OpenPage, web_server: ServerProcess, origin: str) -> None:
    token = web_server.token("dropper")
    page, _ = open_page(token)
    transfer = page.evaluate_handle(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(["dropped by hand\\n"], "dropped.txt", {type: "text/plain"}));
            return dt;
        }"""
    )
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    expect(page.locator("#drop")).to_have_class(re.compile(r"\bover\b"))
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
    expect(page.locator('li.upload[data-name="dropped.txt"]')).to_have_attribute("data-state", "complete")
    doc = by_name(origin, token, "dropped.txt")
    assert doc["size"] == 16 and doc["mime"] == "text/plain"
