"""tuspy (``tusclient``) with a bearer token against ``tusd-py serve`` with auth on."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from tests.services import free_port, wait_for_port

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
SIZE = 700 * 1024 + 17


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``serve`` with auth on (the secret generated in its data dir); yields (endpoint, data dir)."""
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "tusd_py", "serve", "--port", str(port), "--data-dir", str(data)]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            wait_for_port(port, timeout=60)
            yield f"http://127.0.0.1:{port}/files/", data
        finally:
            proc.terminate()
            proc.wait(30)


def token(data: Path, user: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUSD_PY_")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-m", "tusd_py", "token", "--user", user, "--data-dir", str(data)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def download(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as res:
            return int(res.status), res.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read()


def test_tuspy_uploads_with_a_bearer_token(server: tuple[str, Path]) -> None:
    endpoint, data = server
    payload = os.urandom(SIZE)
    headers = {"Authorization": f"Bearer {token(data, 'alice')}"}
    uploader = tus_client.TusClient(endpoint, headers=headers).uploader(
        file_stream=io.BytesIO(payload), chunk_size=128 * 1024, metadata={"filename": "a.bin"}
    )
    uploader.upload()
    assert uploader.url is not None and uploader.offset == SIZE
    status, body = download(uploader.url, headers)
    assert status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    # the upload is alice's: no token → 401, bob's token → 404
    assert download(uploader.url, {})[0] == 401
    assert download(uploader.url, {"Authorization": f"Bearer {token(data, 'bob')}"})[0] == 404


def test_tuspy_without_a_valid_token_is_refused(server: tuple[str, Path]) -> None:
    endpoint, _ = server
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        uploader = tus_client.TusClient(endpoint, headers=headers).uploader(
            file_stream=io.BytesIO(b"data"), chunk_size=1024
        )
        with pytest.raises(TusCommunicationError) as info:
            uploader.upload()
        assert info.value.status_code == 401
