"""Fixtures of the browser tests: Debian's chromium driven by Playwright against a
live ``tusd-py serve`` subprocess (auth on).

* ``chromium`` (module): the browser, launched from ``/usr/bin/chromium``
  (never downloaded); tests using it are skipped when it is missing.
* ``web_server`` (module): :class:`tests.e2e.helpers.ServerProcess` with auth
  on and the per-minute creation limits lifted (the tests create more uploads
  than a basic user may per minute).
* ``open_page``: a new context and page signed in through a ``#token=`` link,
  collecting console errors and page errors; the test fails on any error the
  test did not expect (:func:`expect_errors`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.e2e.helpers import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Playwright's per-action and per-wait timeout (ms).
TIMEOUT_MS = 20_000


@dataclass
class PageErrors:
    """Console and page errors seen by one page."""

    console: list[str] = field(default_factory=list)
    page: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def unexpected(self) -> list[str]:
        return [e for e in self.console + self.page if not any(x in e for x in self.expected)]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/test installs Debian's chromium with apt)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("web-server")
    data = root / "data"
    data.mkdir()
    args = ["--throttle-basic-creations-per-minute", "0", "--throttle-ip-creations-per-minute", "0"]
    server = ServerProcess(data, root / "server.log", args, auth=True)
    try:
        yield server
    finally:
        server.stop()
    failures = [r for r in server.log_records() if r.get("status") == 500 or r.get("level") == "error"]
    assert not failures, f"server logged errors: {failures[:3]}"


#: The only origin :func:`strict_cors_server` allows (no page is ever served from it).
ALLOWED_ORIGIN = "http://allowed.example"


@pytest.fixture
def strict_cors_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with auth whose CORS allow list holds only :data:`ALLOWED_ORIGIN`."""
    data = tmp_path / "data"
    data.mkdir()
    server = ServerProcess(data, tmp_path / "server.log", ["--cors-origins", ALLOWED_ORIGIN], auth=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def origin(web_server: ServerProcess) -> str:
    """``http://127.0.0.1:PORT`` of the server (the page is at ``/``)."""
    return web_server.url.removesuffix("/files/")


OpenPage = Callable[..., tuple[Page, PageErrors]]


@pytest.fixture
def open_page(chromium: Browser, origin: str) -> Iterator[OpenPage]:
    """``open_page(token, chunk_size=None, viewport=None)``: a signed-in page."""
    contexts: list[Any] = []
    seen: list[PageErrors] = []

    def open_(
        token: str | None, chunk_size: int | None = None, **context_args: Any
    ) -> tuple[Page, PageErrors]:
        context = chromium.new_context(**context_args)
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        if chunk_size is not None:
            context.add_init_script(f'localStorage.setItem("tusd-py.chunk-size", "{chunk_size}")')
        page = context.new_page()
        errors = PageErrors()
        seen.append(errors)

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.console.append(message.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: errors.page.append(str(exc)))
        page.goto(f"{origin}/#token={token}" if token else f"{origin}/")
        return page, errors

    yield open_
    for context in contexts:
        context.close()
    problems = [e for errors in seen for e in errors.unexpected()]
    assert not problems, f"console or page errors: {problems[:5]}"


def expect_errors(errors: PageErrors, *fragments: str) -> None:
    """Allow console errors containing any of ``fragments`` (e.g. an expected 413)."""
    errors.expected.extend(fragments)


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go: ``$TUSD_PY_BROWSER_ARTIFACTS`` or ``tests/web/artifacts/``
    (git-ignored; kept after the run for a person to look at)."""
    default = Path(__file__).resolve().parents[1] / "web" / "artifacts"
    path = Path(os.environ.get("TUSD_PY_BROWSER_ARTIFACTS") or default)
    path.mkdir(parents=True, exist_ok=True)
    return path
