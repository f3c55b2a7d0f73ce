"""Refusals arrive to tus-js-client (issue 14.4): a PATCH of 20 MiB that the
server refuses before reading its body (wrong offset, bad token) ends in
tus-js-client's ``onError`` with the status and JSON error, not with
``EPIPE``/``ECONNRESET`` and no response (what it got before the drain of
:mod:`handlers.httpconn`). Runs ``tests/interop/js/refused.mjs`` with ``node``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.interop.live import REPO_ROOT, LiveServer, run_node_script

pytestmark = pytest.mark.interop

SCRIPT = REPO_ROOT / "tests" / "interop" / "js" / "refused.mjs"
DEADLINE = 60.0
SIZE = 20 << 20


def run_refused(live_server: LiveServer, headers: dict[str, str], refuse: str) -> dict[str, Any]:
    config = {"endpoint": live_server.endpoint, "headers": headers, "size": SIZE, "refuse": refuse}
    return run_node_script(SCRIPT, config, DEADLINE)


@pytest.mark.parametrize(
    ("refuse", "status", "code"),
    [("offset", 409, "ERR_MISMATCHED_OFFSET"), ("token", 401, "ERR_UNAUTHENTICATED")],
)
def test_refused_patch_reaches_tus_js_client(
    live_server: LiveServer, client_headers: dict[str, str], refuse: str, status: int, code: str
) -> None:
    result = run_refused(live_server, client_headers, refuse)
    assert result["status"] == status, result
    assert json.loads(result["body"])["error"]["code"] == code
