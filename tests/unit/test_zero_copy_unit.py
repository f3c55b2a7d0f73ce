"""Unit checks of the zero-copy building blocks: which streams are spliced,
and :func:`tusd_py.core.splice.splice_step` over a real socket pair and file."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path

import pytest
import tornado.iostream

from handlers.httpconn import _spliceable
from tusd_py.core.splice import Pipe, splice_step


@pytest.mark.gen_test
async def test_only_plain_tcp_streams_are_spliced() -> None:
    a, b = socket.socketpair()
    plain = tornado.iostream.IOStream(a)
    tls = tornado.iostream.SSLIOStream(b, ssl_options=ssl.create_default_context())
    try:
        assert _spliceable(plain)
        assert not _spliceable(tls)
    finally:
        plain.close()
        tls.close()


def test_splice_step_moves_exactly_count_and_leaves_the_rest(tmp_path: Path) -> None:
    server, client = socket.socketpair()
    server.setblocking(False)
    data = os.urandom(3 << 20)
    sender = threading.Thread(target=client.sendall, args=(data + b"NEXT",))
    sender.start()
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    pipe = Pipe()
    try:
        stored = 0
        for _ in range(1000):
            if stored == len(data):
                break
            step = splice_step(server.fileno(), fd, pipe, len(data) - stored, budget=1.0, grace=1.0)
            assert step.taken == step.stored and not step.eof and step.error is None
            stored += step.stored
        assert stored == len(data)
        sender.join(10)
        server.setblocking(True)
        assert server.recv(4) == b"NEXT"  # nothing past count was taken
        client.close()
        server.setblocking(False)
        assert splice_step(server.fileno(), fd, pipe, 10, budget=1.0, grace=1.0).eof
    finally:
        pipe.close()
        os.close(fd)
        server.close()
    assert (tmp_path / "f").read_bytes() == data
