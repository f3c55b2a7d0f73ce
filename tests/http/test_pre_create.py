"""The blocking pre-create hook against a real HTTP receiver on loopback:
refusals reach the client with the receiver's status and message, metadata
can be rewritten, and a receiver that does not answer in time is handled by
``[hooks] pre_create_on_error``."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.tusclient import Tus, metadata
from tusd_py.core import protocol
from tusd_py.events.hooks.signing import verify

SECRET = "pre-create-secret"


class Receiver:
    """Decides by the ``filename`` metadata; ``slow*`` names are held until released."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, Any], bool]] = []
        self.release = threading.Event()

    def decide(self, body: bytes, signed: str) -> tuple[int, dict[str, Any]]:
        event = json.loads(body)
        self.requests.append((event, verify(SECRET, signed, body, now=time.time())))
        name = event["data"]["filename"] or ""
        if name.startswith("slow"):
            self.release.wait(10)
            return 200, {}
        if name.endswith(".exe"):
            return 422, {"message": "no executables here,\n please"}
        if name == "rename.bin":
            return 200, {"metadata": {"filename": "renamed.bin", "checked": "yes", "drop": None}}
        return 204, {}


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    record = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, answer = record.decide(body, self.headers.get("Tusd-Signature", ""))
            data = json.dumps(answer).encode() if status != 204 else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            # The timeout cases: the server gave up on a slow answer and closed the connection.
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                super().handle_error(request, client_address)

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record, f"http://127.0.0.1:{server.server_address[1]}/pre-create"
    record.release.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture(params=["reject", "allow"])
def config_overrides(request: pytest.FixtureRequest, receiver: tuple[Receiver, str]) -> dict[str, Any]:
    return {
        "hooks.pre_create_url": receiver[1],
        "hooks.secret": SECRET,
        "hooks.timeout": 0.5,
        "hooks.pre_create_on_error": request.param,
    }


async def create(tus: Tus, filename: str, **meta: str) -> Any:
    return await tus.create(5, headers={"Upload-Metadata": metadata(filename=filename, **meta)})


@pytest.mark.gen_test(timeout=60)
async def test_pre_create_refuses_rewrites_and_times_out(
    tus: Tus, http_client: AsyncHTTPClient, receiver: tuple[Receiver, str], config_overrides: dict[str, Any]
) -> None:
    record, _ = receiver
    refused = await create(tus, "tool.exe")
    assert refused.code == 422
    assert json.loads(refused.body)["error"] == {
        "code": "ERR_HOOK_REJECTED",
        "message": "refused by the pre-create hook: no executables here, please",
    }
    assert "Location" not in refused.headers

    renamed = await create(tus, "rename.bin", drop="x", keep="k")
    assert renamed.code == 201
    head = await tus.head(renamed.headers["Location"])
    assert protocol.parse_metadata(head.headers["Upload-Metadata"]) == {
        "filename": b"renamed.bin", "keep": b"k", "checked": b"yes",
    }  # fmt: skip

    slow = await create(tus, "slow.bin")
    if config_overrides["hooks.pre_create_on_error"] == "reject":
        assert slow.code == 503 and slow.headers["Retry-After"] == "5"
        assert json.loads(slow.body)["error"]["code"] == "ERR_HOOK_UNAVAILABLE"
    else:
        assert slow.code == 201
    record.release.set()

    events = [event for event, _ in record.requests]
    assert all(signed for _, signed in record.requests)
    assert [e["type"] for e in events] == ["pre-create"] * 3
    assert events[1]["data"]["metadata"] == {"filename": "rename.bin", "drop": "x", "keep": "k"}
    assert events[1]["data"]["size"] == 5 and events[1]["data"]["partial"] is False
