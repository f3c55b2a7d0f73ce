"""Interop with tuspy (the Python tus client, ``tusclient``) against ``tusd-py serve``.

Covers: chunked upload, resume from tuspy's ``FileStorage`` URL store after a
partial upload (the new uploader continues at the server's offset, not at 0),
and ``upload_checksum=True`` (every PATCH carries ``Upload-Checksum``; a wrong
one is refused with 460 and stores nothing). Bytes are checked by sha256 via GET.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError, TusUploadFailed
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader.uploader import Uploader

from tests.interop.live import LiveServer, head, sha256_via_get, write_random_file

pytestmark = pytest.mark.interop

MIB = 1 << 20
SIZE = 3 * MIB + 12345
CHUNK = 512 * 1024


class _KeptOpenStream(io.BufferedReader):
    """A file stream that survives tuspy's ``with uploader.get_file_stream()``.

    tuspy closes the stream it was given after fingerprinting it (and leaks
    the handles it opens itself when given a path), so the tests hand it this
    stream and close it themselves.
    """

    def close(self) -> None:
        return None

    def release(self) -> None:
        super().close()


@contextlib.contextmanager
def _open_for_tuspy(path: Path) -> Iterator[io.BufferedReader]:
    stream = _KeptOpenStream(io.FileIO(path, "rb"))
    try:
        yield stream
    finally:
        stream.release()


def _client(live_server: LiveServer, client_headers: dict[str, str]) -> tus_client.TusClient:
    return tus_client.TusClient(live_server.endpoint, headers=dict(client_headers))


def _upload_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _patches(live_server: LiveServer, since: int, upload_id: str, expected: int) -> list[dict[str, Any]]:
    """The PATCH access-log lines of ``upload_id`` (waits for ``expected`` of them)."""

    def is_patch(r: dict[str, Any]) -> bool:
        return r.get("event") == "Request" and r.get("method") == "PATCH" and r.get("upload_id") == upload_id

    return live_server.wait_for_records(since, is_patch, expected)


def test_chunked_upload(live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "chunked.bin"
    digest = write_random_file(path, SIZE, seed=1)
    log_start = live_server.log_size()

    with _open_for_tuspy(path) as stream:
        uploader = _client(live_server, client_headers).uploader(
            file_stream=stream, chunk_size=CHUNK, metadata={"filename": "chunked.bin"}
        )
        uploader.upload()

    assert uploader.url is not None and uploader.offset == SIZE
    expected = math.ceil(SIZE / CHUNK)
    patches = _patches(live_server, log_start, _upload_id(uploader.url), expected)
    assert len(patches) == expected
    assert all(p["status"] == 204 for p in patches)
    info = head(uploader.url, client_headers)
    assert info["Upload-Offset"] == str(SIZE) and info["Upload-Length"] == str(SIZE)
    assert sha256_via_get(uploader.url, client_headers) == digest


def test_resume_from_file_storage(
    live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "resume.bin"
    digest = write_random_file(path, SIZE, seed=2)
    store_path = tmp_path / "tus-urls.json"
    partial = 3 * CHUNK

    # First run: stores its URL, uploads three chunks, then stops (the "crash").
    storage = FileStorage(str(store_path))
    with _open_for_tuspy(path) as stream:
        first = _client(live_server, client_headers).uploader(
            file_stream=stream, chunk_size=CHUNK, store_url=True, url_storage=storage
        )
        first.upload(stop_at=partial)
    storage.close()
    assert first.url is not None and first.offset == partial
    assert head(first.url, client_headers)["Upload-Offset"] == str(partial)

    # The log is written off the event loop: wait for the first run's PATCH lines
    # before marking where the second run's begin.
    _patches(live_server, 0, _upload_id(first.url), partial // CHUNK)
    # Second run: a new storage object on the same file and a new uploader.
    log_start = live_server.log_size()
    storage = FileStorage(str(store_path))
    try:
        with _open_for_tuspy(path) as stream:
            second = _client(live_server, client_headers).uploader(
                file_stream=stream, chunk_size=CHUNK, store_url=True, url_storage=storage
            )
            assert second.url == first.url, "the URL did not come from the FileStorage"
            assert second.offset == partial, "the offset did not come from the server's HEAD"
            second.upload()
    finally:
        storage.close()

    assert second.offset == SIZE
    expected = math.ceil((SIZE - partial) / CHUNK)
    patches = _patches(live_server, log_start, _upload_id(first.url), expected)
    assert len(patches) == expected, "the upload restarted instead of resuming"
    creations = [r for r in live_server.log_records(log_start) if r.get("method") == "POST"]
    assert creations == []
    assert sha256_via_get(first.url, client_headers) == digest


def test_upload_checksum(live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "checksum.bin"
    digest = write_random_file(path, SIZE, seed=3)

    with _open_for_tuspy(path) as stream:
        uploader = _client(live_server, client_headers).uploader(
            file_stream=stream, chunk_size=CHUNK, upload_checksum=True
        )
        uploader.upload()

    assert uploader.request is not None
    sent = uploader.request._request_headers["upload-checksum"]
    last_chunk = path.read_bytes()[(SIZE - 1) // CHUNK * CHUNK :]
    assert sent == "sha1 " + base64.b64encode(hashlib.sha1(last_chunk).digest()).decode()
    assert uploader.url is not None
    assert sha256_via_get(uploader.url, client_headers) == digest


class _WrongChecksumUploader(Uploader):
    """A tuspy uploader whose sha1 digests are of the wrong bytes."""

    @property
    def checksum_algorithm(self) -> Callable[[bytes], Any]:
        return _wrong_sha1


def _wrong_sha1(data: bytes) -> Any:
    return hashlib.sha1(b"not " + data)


def test_wrong_checksum_is_refused(
    live_server: LiveServer, client_headers: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "bad-checksum.bin"
    write_random_file(path, CHUNK, seed=4)
    with _open_for_tuspy(path) as stream:
        uploader = _WrongChecksumUploader(
            file_stream=stream,
            client=_client(live_server, client_headers),
            chunk_size=CHUNK,
            upload_checksum=True,
        )
        with pytest.raises(TusUploadFailed) as failure:
            uploader.upload()

    assert failure.value.status_code == 460
    assert uploader.url is not None
    assert head(uploader.url, client_headers)["Upload-Offset"] == "0"


def test_the_interop_server_requires_a_token(live_server: LiveServer, tmp_path: Path) -> None:
    """The clients above pass because of their bearer token: without one, tuspy is refused."""
    path = tmp_path / "anon.bin"
    write_random_file(path, 1000, seed=3)
    with _open_for_tuspy(path) as stream:
        uploader = tus_client.TusClient(live_server.endpoint).uploader(file_stream=stream, chunk_size=500)
        with pytest.raises(TusCommunicationError) as caught:
            uploader.upload()
    assert caught.value.status_code == 401
