"""The benchmarks' baseline: a bare Tornado ``stream_request_body`` handler.

It only appends request bodies to a file, and speaks just enough tus for the
bench client: ``POST`` creates (``Location``), ``HEAD`` reports the offset,
``PATCH`` appends the body as it arrives (one ``os.write`` per received
chunk, no checks beyond the offset), ``DELETE`` removes. Offsets live in a
dict of the application (this process serves one benchmark run).

Usage: ``python tests/bench/bare_server.py --port P --data-dir D [--read-size 1048576]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import tornado.httpserver
import tornado.web


@dataclass
class Store:
    """Upload files under ``root`` and their lengths and offsets."""

    root: Path
    lengths: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)


class Collection(tornado.web.RequestHandler):
    def initialize(self, store: Store) -> None:
        self.store = store

    def post(self) -> None:
        upload_id = secrets.token_hex(16)
        (self.store.root / upload_id).touch()
        self.store.lengths[upload_id] = int(self.request.headers.get("Upload-Length", "0"))
        self.store.offsets[upload_id] = 0
        self.set_header("Tus-Resumable", "1.0.0")
        self.set_header("Location", f"/files/{upload_id}")
        self.set_status(201)


@tornado.web.stream_request_body
class Upload(tornado.web.RequestHandler):
    SUPPORTED_METHODS = ("HEAD", "PATCH", "DELETE")

    def initialize(self, store: Store) -> None:
        self.store = store
        self.fd: int | None = None
        self.received = 0

    def prepare(self) -> None:
        upload_id = self.path_kwargs.get("upload_id") or self.path_args[0]
        if upload_id not in self.store.offsets:
            raise tornado.web.HTTPError(404)
        self.upload_id = upload_id
        self.set_header("Tus-Resumable", "1.0.0")
        if self.request.method == "PATCH":
            if int(self.request.headers.get("Upload-Offset", "-1")) != self.store.offsets[upload_id]:
                raise tornado.web.HTTPError(409)
            self.fd = os.open(self.store.root / upload_id, os.O_WRONLY | os.O_APPEND)

    def data_received(self, chunk: bytes) -> None:
        assert self.fd is not None
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view) :]
        self.received += len(chunk)

    def _close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.store.offsets[self.upload_id] += self.received

    def on_connection_close(self) -> None:
        self._close()

    def head(self, upload_id: str) -> None:
        self.set_header("Upload-Offset", str(self.store.offsets[upload_id]))
        self.set_header("Upload-Length", str(self.store.lengths[upload_id]))
        self.set_header("Cache-Control", "no-store")

    def patch(self, upload_id: str) -> None:
        self._close()
        self.set_header("Upload-Offset", str(self.store.offsets[upload_id]))
        self.set_status(204)

    def delete(self, upload_id: str) -> None:
        (self.store.root / upload_id).unlink(missing_ok=True)
        del self.store.offsets[upload_id], self.store.lengths[upload_id]
        self.set_status(204)


def make_app(data_dir: Path) -> tornado.web.Application:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(root=data_dir)
    return tornado.web.Application(
        [(r"/files/?", Collection, {"store": store}), (r"/files/([0-9a-f]+)", Upload, {"store": store})]
    )


async def serve(port: int, data_dir: Path, read_size: int, reuse_port: bool = False) -> None:
    server = tornado.httpserver.HTTPServer(
        make_app(data_dir), max_body_size=1 << 50, max_buffer_size=4 * read_size, chunk_size=read_size
    )
    server.listen(port, address="127.0.0.1", reuse_port=reuse_port)
    print(f"bare server listening on http://127.0.0.1:{port}/files/", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--read-size", type=int, default=1 << 20, help="HTTPServer chunk_size (bytes)")
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="SO_REUSEPORT: several processes share the port (an upload stays on its connection's process)",
    )
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.data_dir, args.read_size, args.reuse_port))


if __name__ == "__main__":
    main()
