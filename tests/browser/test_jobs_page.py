"""Jobs on the upload page: a CSV uploaded through the page is auto-indexed, its
row follows the ``index`` job to "ready" (job events on the ``/events``
socket), "Preview rows" (keyboard) shows the CSV's first rows, their total and
"More" pages; "Process" queues a ``sha256`` job and shows its digest. All under
the page's CSP: any console error fails the test (``open_page``)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from playwright.sync_api import WebSocket, WebSocketRoute, expect

from tests.browser.conftest import OpenPage, expect_errors
from tests.browser.support import until
from tests.e2e.helpers import ServerProcess

#: Data rows of the test CSV: more than two preview pages of 20.
ROWS = 45


def make_csv(path: Path) -> list[list[str]]:
    """Write a CSV of ``ROWS`` rows (text, integer, text columns); its lines, header first."""
    lines = [["name", "count", "city"]] + [[f"item {i}", str(i * 7), f"town-{i % 5}"] for i in range(ROWS)]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(lines)
    path.write_text(out.getvalue())
    return lines


def test_csv_row_shows_jobs_live_previews_rows_and_computes_sha256(
    open_page: OpenPage, web_server: ServerProcess, tmp_path: Path, artifacts: Path
) -> None:
    token = web_server.token("jobs-page")
    path = tmp_path / "sales.csv"
    lines = make_csv(path)
    page, _ = open_page(token)
    frames: list[dict[str, Any]] = []

    def on_socket(socket: WebSocket) -> None:
        socket.on("framereceived", lambda payload: frames.append(json.loads(payload)))

    page.on("websocket", on_socket)
    page.reload()  # the socket now opens under watch (the token stays in sessionStorage)
    expect(page.locator("#library")).to_have_attribute("data-live", "on")

    page.get_by_label("choose files").set_input_files(path)
    expect(page.locator('li.upload[data-name="sales.csv"]')).to_have_attribute("data-state", "complete")
    upload_id = page.locator('li.upload[data-name="sales.csv"]').get_attribute("data-id")
    assert upload_id
    row = page.locator(f'#files-body tr.file[data-id="{upload_id}"]')
    index = row.locator('.job-list li[data-kind="index"]')
    expect(index).to_have_text("index: ready")
    expect(row.locator("td.state")).to_have_text("ready")
    index_events = [f for f in frames if f.get("upload_id") == upload_id and f.get("kind") == "index"]
    assert [f["type"] for f in index_events][-1] == "job.completed", index_events

    # the preview, by keyboard: the button is labelled, Enter opens it and focus moves to its heading
    preview = page.get_by_role("button", name="Preview the rows of sales.csv")
    expect(preview).to_have_attribute("aria-expanded", "false")
    preview.focus()
    page.keyboard.press("Enter")
    panel = page.get_by_role("region", name="Rows of sales.csv")
    # focus moves into the preview (a list refresh racing the click may take it back to the row)
    expect(panel.get_by_role("heading", name="Rows of sales.csv")).to_be_visible()
    expect(preview).to_have_attribute("aria-expanded", "true")
    table = panel.get_by_role("table", name="Rows of sales.csv")
    expect(table.locator("thead th")).to_have_text(lines[0])
    expect(table.locator("tbody tr")).to_have_count(20)
    expect(panel.locator(".total")).to_have_text(f"{ROWS} rows in all; showing 20.")
    shown = [r.locator("td").all_inner_texts() for r in table.locator("tbody tr").all()]
    assert shown == lines[1:21]
    page.screenshot(path=str(artifacts / "jobs-preview.png"), full_page=True)

    more = panel.get_by_role("button", name="More rows of sales.csv")
    more.focus()
    page.keyboard.press("Enter")
    expect(table.locator("tbody tr")).to_have_count(40)
    page.keyboard.press("Enter")  # focus stayed on More
    expect(table.locator("tbody tr")).to_have_count(ROWS)
    expect(more).to_be_hidden()  # the last page: no next_cursor
    expect(panel.get_by_role("button", name="Close the rows of sales.csv")).to_be_focused()
    shown = [r.locator("td").all_inner_texts() for r in table.locator("tbody tr").all()]
    assert shown == lines[1:]
    expect(panel.locator(".total")).to_have_text(f"{ROWS} rows in all; showing {ROWS}.")

    # sha256: POST /process; with the socket up the page does not poll, so "ready"
    # and the digest arrive through the job events
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    row.get_by_role("button", name="Compute the sha256 of sales.csv").click()
    sha = row.locator('.job-list li[data-kind="sha256"]')
    expect(sha.locator(".digest")).to_have_text(digest)
    expect(sha).to_have_attribute("data-status", "COMPLETED")
    assert sha.inner_text().startswith("sha256: ready")
    until(
        page,
        lambda: any(f.get("kind") == "sha256" and f["type"] == "job.completed" for f in frames),
        "the sha256 job's completion on the socket",
    )
    expect(row.get_by_role("button", name="Compute the sha256 of sales.csv")).to_have_count(0)
    expect(panel).to_be_visible()  # job events update the row in place: the preview stays open

    panel.get_by_role("button", name="Close the rows of sales.csv").click()
    expect(panel).to_have_count(0)
    expect(preview).to_be_focused()


def test_without_the_socket_job_states_are_polled(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path
) -> None:
    token = web_server.token("jobs-polled")
    path = tmp_path / "polled.csv"
    make_csv(path)
    page, errors = open_page(None)
    expect_errors(errors, "WebSocket")
    refused: list[str] = []

    def refuse(socket: WebSocketRoute) -> None:
        refused.append(socket.url)
        socket.close(code=1011, reason="refused by the test")

    page.route_web_socket("**/events", refuse)
    page.goto(f"{origin}/?no-socket#token={token}")  # a new document, under the route
    until(page, lambda: refused, "the page to try the socket")
    page.get_by_label("choose files").set_input_files(path)
    row = page.locator("#files-body tr.file").filter(has_text="polled.csv")
    expect(row.locator('.job-list li[data-kind="index"]')).to_have_text("index: ready")
    expect(page.locator("#library")).not_to_have_attribute("data-live", "on")

    row.get_by_role("button", name="Compute the sha256 of polled.csv").click()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    expect(row.locator('.job-list li[data-kind="sha256"] .digest')).to_have_text(digest)  # polled every 3 s
