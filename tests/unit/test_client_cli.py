"""Pure pieces of the client command line: the collection URL and SIGTERM (issue 12, point 8)."""

from __future__ import annotations

import os
import signal

import pytest

from tusd_py.cli.client.commands import endpoint_of, sigterm_raises
from tusd_py.cli.client.errors import EXIT_USAGE, Terminated, UsageError
from tusd_py.cli.client.listing import suggest_collection


@pytest.mark.parametrize(
    ("url", "ident", "endpoint"),
    [
        ("http://h:8080/files", "abc", "http://h:8080/files/"),
        ("http://h:8080/files/", "http://other/files/x", "http://h:8080/files/"),  # --url wins
        (None, "http://h:8080/files/abc", "http://h:8080/files/"),
        (None, "https://h/api/uploads/abc/", "https://h/api/uploads/"),
        (None, "http://h:8080/files/abc?x=1", "http://h:8080/files/"),
    ],
)
def test_endpoint_from_url_or_a_full_upload_url(url: str | None, ident: str, endpoint: str) -> None:
    assert endpoint_of(url, ident) == endpoint


@pytest.mark.parametrize("ident", ["abc", "http://h:8080", "http://h:8080/", "ftp://h/files/abc", None])
def test_no_endpoint_is_a_usage_error(ident: str | None) -> None:
    with pytest.raises(UsageError) as caught:
        endpoint_of(None, ident)
    assert caught.value.exit_code == EXIT_USAGE
    assert "--url" in str(caught.value)


def test_suggested_collection_is_files_on_the_same_host() -> None:
    assert suggest_collection("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/files/"
    assert suggest_collection("https://up.example/api/") == "https://up.example/files/"
    assert suggest_collection("http://127.0.0.1:8080/files/") == "http://HOST:PORT/files/"


def test_sigterm_raises_terminated_inside_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_raises():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before
