"""Raw draft requests for the IETF resumable-upload tests (one connection each).

:func:`exchange` sends one request and reads every ``1xx`` interim response
up to the final one, so ``104 Upload Resumption Supported`` can be asserted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.http.conftest import Connect
from tests.http.raw import RawResponse

#: At most this many interim responses are read before the final one.
MAX_INTERIMS = 1000
PARTIAL = {"Content-Type": "application/partial-upload"}
PROBLEM_BASE = "https://iana.org/assignments/http-problem-types#"


@dataclass
class Exchange:
    """The interim responses and the final response of one request."""

    final: RawResponse
    interims: list[RawResponse] = field(default_factory=list)

    @property
    def status(self) -> int:
        return self.final.status

    def header(self, name: str) -> str | None:
        return self.final.header(name)

    def problem(self) -> dict[str, Any]:
        assert self.final.header("Content-Type") == "application/problem+json", self.final.headers
        body: dict[str, Any] = json.loads(self.final.body)
        return body


def version_headers(version: int | None) -> dict[str, str]:
    """``Upload-Draft-Interop-Version`` for ``version`` (None: a header-less newest draft)."""
    return {} if version is None else {"Upload-Draft-Interop-Version": str(version)}


def complete_header(version: int | None, complete: bool) -> dict[str, str]:
    """The completeness field of ``version`` (``Upload-Incomplete`` for 3)."""
    if version == 3:
        return {"Upload-Incomplete": "?0" if complete else "?1"}
    return {"Upload-Complete": "?1" if complete else "?0"}


async def exchange(
    connect: Connect,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes = b"",
) -> Exchange:
    """Send one request (``Content-Length`` added for bodies) on a new connection."""
    conn = await connect()
    all_headers = dict(headers)
    if method in ("POST", "PATCH", "PUT") and "Transfer-Encoding" not in all_headers:
        all_headers.setdefault("Content-Length", str(len(body)))
    await conn.send_request(method, path, all_headers, body)
    return await read_exchange(conn, method)


async def read_exchange(conn: Any, method: str) -> Exchange:
    """Read interim responses up to and including the final one."""
    interims: list[RawResponse] = []
    for _ in range(MAX_INTERIMS):
        response = await conn.read_response(method)
        if response.status >= 200:
            return Exchange(response, interims)
        interims.append(response)
    raise AssertionError(f"more than {MAX_INTERIMS} interim responses")


def path_of(location: str | None) -> str:
    """The path of an absolute ``Location``."""
    assert location, "no Location"
    return "/" + location.split("/", 3)[3]
