"""The page itself: headers and caching, sign-in, the file list, keyboard and small screens."""

from __future__ import annotations

import json
import re
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import OpenPage, expect_errors
from tests.browser.support import MIB, by_name, listing, request
from tests.e2e.helpers import ServerProcess, make_file

CSP = "default-src 'self'"


def test_page_and_assets_come_from_this_server_under_a_strict_csp(origin: str) -> None:
    status, headers, body = request(f"{origin}/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"].startswith(CSP)
    assert headers["cache-control"] == "no-cache" and headers["x-frame-options"] == "DENY"
    assert request(f"{origin}/", headers={"If-None-Match": headers["etag"]})[0] == 304
    html = body.decode()
    assert "http" not in html.replace("http-equiv", ""), "the page must not load anything from elsewhere"
    assets = [part.split('"', 1)[0] for part in html.split('="/web/static/')[1:]]
    assert {a.split("?", 1)[0] for a in assets} == {
        "icon.svg",
        "app.css",
        "tus.js",
        "live.js",
        "files.js",
        "app.js",
    }
    for asset in assets:
        status, asset_headers, _ = request(f"{origin}/web/static/{asset.replace('&amp;', '&')}")
        assert status == 200 and asset_headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset_headers["content-security-policy"].startswith(CSP)
        assert (
            request(f"{origin}/web/static/{asset}", headers={"If-None-Match": asset_headers["etag"]})[0]
            == 304
        )
    unhashed = request(f"{origin}/web/static/app.js")
    assert unhashed[0] == 200 and unhashed[1]["cache-control"] == "no-cache"
    missing = request(f"{origin}/web/static/nope.js")
    assert missing[0] == 404 and json.loads(missing[2])["error"]["code"] == "ERR_NOT_FOUND"
    assert request(f"{origin}/web/static/index.html")[0] == 404  # the raw template is not served


def test_sign_in_by_pasting_a_token_and_a_refused_token_asks_again(
    open_page: OpenPage, web_server: ServerProcess
) -> None:
    page, errors = open_page(None)
    expect_errors(errors, "status of 401")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Access token").fill("not-a-token")
    page.get_by_label("Access token").press("Enter")
    expect(page.locator("#signin-error")).to_contain_text("Your token was refused")
    page.get_by_label("Access token").fill(web_server.token("paster", "premium"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who")).to_have_text("Signed in as paster (premium)")
    expect(page.locator("#files-status")).to_have_text("No files yet.")
    page.reload()  # sessionStorage keeps the tab signed in
    expect(page.locator("#who")).to_have_text("Signed in as paster (premium)")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("Access token")).to_be_focused()
    assert page.evaluate("() => sessionStorage.length") == 0


def test_a_token_link_signs_in_and_leaves_the_address_bar(
    open_page: OpenPage, web_server: ServerProcess, origin: str
) -> None:
    page, _ = open_page(web_server.token("linked"))
    expect(page.locator("#who")).to_have_text("Signed in as linked (basic)")
    assert page.url == f"{origin}/"


def test_the_list_shows_uploads_and_deletes_one(
    open_page: OpenPage, web_server: ServerProcess, origin: str, tmp_path: Path, artifacts: Path
) -> None:
    token = web_server.token("lister")
    names = ["report.csv", "photo.bin", "notes.txt"]
    for index, name in enumerate(names):
        make_file(tmp_path / name, MIB // 2 + index * 1000, seed=index)
    page, _ = open_page(token)
    expect(page.locator("#files-body tr")).to_have_count(0)
    page.screenshot(path=str(artifacts / "page-empty.png"), full_page=True)
    page.get_by_label("choose files").set_input_files([tmp_path / n for n in names])
    for name in names:
        expect(page.locator(f'li.upload[data-name="{name}"]')).to_have_attribute("data-state", "complete")
    rows = page.locator("#files-body tr")
    expect(rows).to_have_count(3)
    for name in names:
        row = rows.filter(has_text=name)
        # report.csv is typed text/csv by the browser, so it is indexed: "ready" once its job is done
        expect(row.locator('td[data-label="State"]')).to_have_text(re.compile(r"^(complete|ready)$"))
        expect(row.get_by_role("button", name=f"Download {name}")).to_be_visible()
        expect(page.get_by_role("button", name=f"Pause {name}")).to_be_hidden()  # done: no actions
    page.screenshot(path=str(artifacts / "page-with-files.png"), full_page=True)

    # visibility toggle, by keyboard
    doc = by_name(origin, token, "notes.txt")
    toggle = page.get_by_role("button", name="notes.txt is private; make it public")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="notes.txt is public; make it private")).to_be_visible()
    assert by_name(origin, token, "notes.txt")["visibility"] == "public"

    # copy a signed link: a URL that downloads without a token
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy a download link for report.csv").click()
    expect(page.locator("#files-status")).to_have_text("Link to report.csv copied.")
    link = page.evaluate("() => navigator.clipboard.readText()")
    assert link.startswith(f"{origin}/files/") and "signature=" in link
    assert request(link)[0] == 200

    # delete (confirmed in the dialog)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete photo.bin").click()
    expect(page.locator("#files-status")).to_have_text("Deleted photo.bin.")
    expect(rows).to_have_count(2)
    assert sorted(d["filename"] for d in listing(origin, token)) == ["notes.txt", "report.csv"]
    page.get_by_role("button", name="Refresh").click()
    expect(rows.filter(has_text="photo.bin")).to_have_count(0)
    assert doc["file_id"] in page.locator("#files-body").inner_html()

    page.set_viewport_size({"width": 360, "height": 800})  # the list on a phone: no sideways scrolling
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(artifacts / "page-360px.png"), full_page=True)


def test_keyboard_labels_and_a_360px_screen(open_page: OpenPage, web_server: ServerProcess) -> None:
    page, _ = open_page(web_server.token("narrow"), viewport={"width": 360, "height": 740})
    expect(page.locator("#who")).to_be_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('button, input, [tabindex]')]
            .filter(e => !e.closest('[hidden], template'))
            .filter(e => !(e.getAttribute('aria-label') || e.textContent.trim() || e.labels?.length))
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []
    page.bring_to_front()
    page.keyboard.press("Tab")  # Sign out
    page.keyboard.press("Tab")  # the file picker (visually hidden; its label shows the focus)
    expect(page.get_by_label("choose files")).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    assert chooser.value.is_multiple()
