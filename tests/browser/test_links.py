"""Sign-in links: ``tusd-py token --link`` and the first-run link of ``serve``'s banner."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import OpenPage
from tests.e2e.helpers import ServerProcess, child_env, cli_args
from tusd_py.web.urls import page_url, sign_in_link

LINK = re.compile(r"(http://127\.0\.0\.1:\d+/)#token=([A-Za-z0-9._-]+)")


def test_banner_names_the_page_first_and_its_first_run_link_signs_in_as_admin(
    open_page: OpenPage, web_server: ServerProcess, origin: str
) -> None:
    lines = web_server.log_path.with_suffix(".out").read_text().splitlines()
    assert lines[0] == f"tusd-py: open {origin}/ to upload; listening on {origin}/files/"
    assert lines[1].startswith("get a token: tusd-py token")
    found = LINK.search(lines[2])
    assert lines[2].startswith("first run: sign in as admin") and found and found.group(1) == f"{origin}/"
    page, _ = open_page(found.group(2))
    expect(page.locator("#who")).to_have_text("Signed in as admin (admin)")


def test_token_link_prints_a_link_the_page_accepts(
    open_page: OpenPage, web_server: ServerProcess, origin: str
) -> None:
    argv = cli_args(
        "token", "--user", "clicker", "--data-dir", str(web_server.data_dir), "--link", f"{origin}/"
    )
    out = subprocess.run(argv, env=child_env(), capture_output=True, text=True, timeout=60, check=True)
    found = LINK.fullmatch(out.stdout.strip())
    assert found and found.group(1) == f"{origin}/", out.stdout
    default = subprocess.run(
        argv[:-1], env=child_env(), capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert default.startswith("http://127.0.0.1:8080/#token="), default  # host and port of the config
    page, _ = open_page(found.group(2))
    expect(page.locator("#who")).to_have_text("Signed in as clicker (basic)")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080/"),
        ("0.0.0.0", "http://127.0.0.1:8080/"),
        ("::", "http://[::1]:8080/"),
        ("::1", "http://[::1]:8080/"),
        ("files.example.org", "http://files.example.org:8080/"),
    ],
)
def test_page_url_of_a_listening_address(host: str, expected: str) -> None:
    assert page_url(host, 8080) == expected


def test_sign_in_link_puts_the_token_in_the_fragment_only() -> None:
    assert sign_in_link("http://h:1/#old", "a.b-c_d") == "http://h:1/#token=a.b-c_d"
    assert sign_in_link("http://h:1/", "a/b+c") == "http://h:1/#token=a%2Fb%2Bc"
