"""Type checks on the first bytes (python-magic): refused types → 415 naming the
type, the upload deleted with its bytes; allowed types recorded as the MIME."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient

from tests.restapi import eventually, get_json, multipart_body, open_raw, post_index, request_head
from tests.tusclient import PATCH_TYPE, Tus

#: The head of a minimal x86-64 ELF executable (ET_EXEC), then filler.
ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, 0x3E) + b"\0" * 40 + os.urandom(200_000)
#: A PE (MZ + PE\0\0) header.
PE = b"MZ" + b"\0" * 58 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 200 + os.urandom(50_000)
PNG = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 100 + os.urandom(50_000)
TEXT = b"plain words in a plain text file\n" * 3000


def stored(data_dir: Path) -> list[Path]:
    root = data_dir / "uploads"
    return list(root.iterdir()) if root.exists() else []


async def assert_refused(res: Any, detected: str, data_dir: Path) -> None:
    assert res.code == 415, res.body
    error = json.loads(res.body)["error"]
    assert error["code"] == "ERR_FILE_TYPE_NOT_ALLOWED" and detected in error["message"]

    async def freed() -> bool:
        return stored(data_dir) == []

    await eventually(freed, what="refused bytes freed")


class TestDefaultPolicy:
    """Default: everything but native executables."""

    @pytest.mark.gen_test
    async def test_elf_patch_is_refused_after_first_chunk(
        self, http_client: AsyncHTTPClient, base_url: str, data_dir: Path
    ) -> None:
        tus = Tus(http_client, base_url)
        url = await tus.create_url(len(ELF))
        res = await tus.patch(url, 0, ELF)
        await assert_refused(res, "application/x-executable", data_dir)
        assert (await tus.head(url)).code == 404

    @pytest.mark.gen_test
    async def test_pe_creation_with_upload_is_refused(
        self, http_client: AsyncHTTPClient, base_url: str, data_dir: Path
    ) -> None:
        res = await Tus(http_client, base_url).create(len(PE), body=PE)
        await assert_refused(res, "application/vnd.microsoft.portable-executable", data_dir)

    @pytest.mark.parametrize("form", ["multipart", "raw"])
    @pytest.mark.gen_test
    async def test_elf_post_index_is_refused(
        self, http_client: AsyncHTTPClient, base_url: str, data_dir: Path, form: str
    ) -> None:
        if form == "multipart":
            body, ctype = multipart_body(ELF, filename="a.out")
        else:
            body, ctype = ELF, "application/octet-stream"
        res = await post_index(http_client, base_url, body, ctype, {"Idempotency-Key": f"elf-{form}"})
        await assert_refused(res, "application/x-executable", data_dir)
        _, listing = await get_json(http_client, f"{base_url}/files/")
        assert listing["items"] == []
        # The key does not keep pointing at the deleted upload.
        again = await post_index(http_client, base_url, body, ctype, {"Idempotency-Key": f"elf-{form}"})
        assert again.code == 415

    @pytest.mark.gen_test
    async def test_elf_sent_in_tiny_pieces_is_still_recognised(
        self, http_client: AsyncHTTPClient, base_url: str, data_dir: Path
    ) -> None:
        async def producer(write: Any) -> None:
            for i in range(0, 20_000, 7):
                await write(ELF[i : i + 7])

        res = await http_client.fetch(
            f"{base_url}/index",
            method="POST",
            headers={"Content-Type": "application/octet-stream"},
            body_producer=producer,
            raise_error=False,
        )
        await assert_refused(res, "application/x-executable", data_dir)

    @pytest.mark.gen_test
    async def test_allowed_type_is_recorded_and_served(
        self, http_client: AsyncHTTPClient, base_url: str
    ) -> None:
        tus = Tus(http_client, base_url)
        url = await tus.create_url(len(PNG))
        assert (await tus.patch(url, 0, PNG)).code == 204
        got = await tus.get(url)
        assert got.body == PNG and got.headers["Content-Type"] == "image/png"
        _, status = await get_json(http_client, f"{base_url}/index-status/{url.rsplit('/', 1)[-1]}")
        assert status["mime"] == "image/png"

    @pytest.mark.gen_test
    async def test_shell_scripts_are_allowed_by_default(
        self, http_client: AsyncHTTPClient, base_url: str
    ) -> None:
        res = await post_index(http_client, base_url, b"#!/bin/sh\necho hi\n", "application/octet-stream")
        assert res.code == 201 and json.loads(res.body)["mime"] == "text/x-shellscript"


class TestAllowList:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"filetypes.allow": "image/*,application/pdf"}

    @pytest.mark.gen_test
    async def test_type_outside_allow_list_is_refused(
        self, http_client: AsyncHTTPClient, base_url: str, data_dir: Path
    ) -> None:
        tus = Tus(http_client, base_url)
        url = await tus.create_url(len(TEXT))
        res = await tus.patch(url, 0, TEXT)
        await assert_refused(res, "text/plain", data_dir)
        body, ctype = multipart_body(TEXT, filename="notes.txt")
        res = await post_index(http_client, base_url, body, ctype)
        await assert_refused(res, "text/plain", data_dir)

    @pytest.mark.gen_test
    async def test_type_on_allow_list_passes(self, http_client: AsyncHTTPClient, base_url: str) -> None:
        res = await post_index(http_client, base_url, PNG, "application/octet-stream")
        assert res.code == 201 and json.loads(res.body)["mime"] == "image/png"


class TestChecksDisabled:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"filetypes.enabled": False}

    @pytest.mark.gen_test
    async def test_executables_pass_and_no_type_is_recorded(
        self, http_client: AsyncHTTPClient, base_url: str
    ) -> None:
        res = await post_index(http_client, base_url, ELF, "application/octet-stream")
        assert res.code == 201 and json.loads(res.body)["mime"] is None


@pytest.mark.gen_test
async def test_refusal_happens_before_the_rest_is_read(
    http_client: AsyncHTTPClient, base_url: str, data_dir: Path
) -> None:
    """The 415 arrives after the first 64 KiB of a 64 MiB body; nothing is kept."""
    tus = Tus(http_client, base_url)
    url = await tus.create_url(64 << 20)
    stream = await open_raw(base_url)
    head = request_head(
        "PATCH",
        url.removeprefix(base_url),
        {"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Length": str(64 << 20), **PATCH_TYPE},
    )
    await stream.write(head + ELF[:65536])
    response = await stream.read_until(b"\r\n\r\n")
    stream.close()
    assert response.startswith(b"HTTP/1.1 415 "), response
    assert (await tus.head(url)).code == 404
    assert stored(data_dir) == []
