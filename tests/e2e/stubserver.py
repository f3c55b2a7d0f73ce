"""A scripted HTTP/1.1 stub server on 127.0.0.1 for client error-path tests.

``StubServer({"POST": [Reply(429, ...), Reply(201, ...)], ...})`` answers each
method's requests with its replies in order (the last one repeats). A reply
can refuse an ``Expect: 100-continue`` (answer before the body, as a real
server refusing a request does) or answer after reading only part of the body
and close (as a server that rejects content it has started to see). Every
request is recorded. Runs in a daemon thread; stop it with :meth:`stop` (or
use it as a context manager).
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    #: A dict is sent as JSON.
    body: bytes | dict[str, Any] = b""
    #: Answer "100 Continue" (and read the body) before replying; False replies at once.
    continue_: bool = True
    #: With ``continue_``, read at most this many body bytes, then reply and close (None: all).
    read_limit: int | None = None


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body_read: int


class StubServer:
    def __init__(self, script: Mapping[str, list[Reply]]) -> None:
        self.script = {method: list(replies) for method, replies in script.items()}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def _next(self) -> Reply:
                with stub._lock:
                    replies = stub.script.get(self.command) or [Reply(405)]
                    return replies.pop(0) if len(replies) > 1 else replies[0]

            def handle_expect_100(self) -> bool:
                reply = self._next()
                self._pending = reply
                if reply.continue_:
                    return super().handle_expect_100()
                self._record(0)
                self._send(reply, close=True)
                return False

            def _record(self, body_read: int) -> None:
                with stub._lock:
                    stub.requests.append(Seen(self.command, self.path, dict(self.headers.items()), body_read))

            def _send(self, reply: Reply, close: bool) -> None:
                body = reply.body
                payload = json.dumps(body).encode() if isinstance(body, dict) else body
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if isinstance(body, dict):
                    self.send_header("Content-Type", "application/json")
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(payload)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                self.wfile.flush()

            def _answer(self) -> None:
                reply = getattr(self, "_pending", None) or self._next()
                self._pending = None
                length = int(self.headers.get("Content-Length") or 0)
                limit = length if reply.read_limit is None else min(length, reply.read_limit)
                read = 0
                while read < limit:
                    block = self.rfile.read(min(1 << 16, limit - read))
                    if not block:
                        break
                    read += len(block)
                self._record(read)
                self._send(reply, close=read < length)

            do_GET = do_POST = do_PATCH = do_HEAD = do_OPTIONS = do_DELETE = _answer

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/files/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-http", daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def seen(self, method: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.method == method]
