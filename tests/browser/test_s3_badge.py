"""A file above the S3 threshold is shown as stored in S3 (the server says so)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import TIMEOUT_MS
from tests.browser.support import MIB, by_name
from tests.e2e.helpers import ServerProcess, make_file
from tests.integration import s3_support as s3t


@pytest.fixture
def s3_server(tmp_path: Path, s3_endpoint: str) -> Iterator[ServerProcess]:
    """``serve`` (auth on) relaying uploads above 12 MiB to a fresh bucket on moto."""
    data = tmp_path / "s3-data"
    data.mkdir()
    env = s3t.env_for(s3t.overrides(s3_endpoint, s3t.new_bucket(s3_endpoint)))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        server = ServerProcess(data, tmp_path / "s3-server.log", auth=True)
    try:
        yield server
    finally:
        server.stop()


def test_a_large_file_is_shown_as_routed_to_s3(
    chromium: Browser, s3_server: ServerProcess, tmp_path: Path
) -> None:
    origin = s3_server.url.removesuffix("/files/")
    token = s3_server.token("s3user")
    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    make_file(small, MIB, seed=5)
    make_file(large, s3t.THRESHOLD + MIB, seed=6)
    context = chromium.new_context()
    try:
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(f"{origin}/#token={token}")
        page.get_by_label("choose files").set_input_files([small, large])
        row = page.locator('li.upload[data-name="large.bin"]')
        expect(row).to_have_attribute("data-state", "complete")
        expect(row.locator(".where")).to_have_text("stored in S3")
        expect(page.locator('li.upload[data-name="small.bin"] .where')).to_have_text("")
        listed = page.locator("#files-body tr").filter(has_text="large.bin")
        expect(listed.locator(".badge")).to_have_text("S3")
        expect(page.locator("#files-body tr").filter(has_text="small.bin").locator(".badge")).to_have_count(0)
        assert by_name(origin, token, "large.bin")["storage"] == "s3"
    finally:
        context.close()
