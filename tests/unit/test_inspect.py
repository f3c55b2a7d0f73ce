"""File type policy and libmagic detection (tusd_py.core.inspect)."""

from __future__ import annotations

import random
import struct

import pytest

from tusd_py.core import errors
from tusd_py.core.config import ConfigError, load_config
from tusd_py.core.inspect import MagicInspector, TypePolicy, build_inspector
from tusd_py.core.models import UploadInfo

DEFAULT = load_config(environ={})
INFO = UploadInfo(id="0" * 32, owner="u", length=None)


@pytest.mark.parametrize(
    ("allow", "deny", "mime", "allowed"),
    [
        (("*",), (), "application/x-executable", True),
        (("*",), ("application/x-executable",), "application/x-executable", False),
        (("*",), ("application/x-executable",), "Application/X-Executable; charset=binary", False),
        (("image/*",), (), "image/png", True),
        (("image/*",), (), "imagex/png", False),
        (("image/*",), (), "text/plain", False),
        (("image/*", "application/pdf"), ("image/svg+xml",), "image/svg+xml", False),
        (("image/*", "application/pdf"), ("image/svg+xml",), "application/pdf", True),
        ((), (), "text/plain", False),
    ],
)
def test_policy(allow: tuple[str, ...], deny: tuple[str, ...], mime: str, allowed: bool) -> None:
    assert TypePolicy(allow, deny).allows(mime) is allowed


ELF_EXEC = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, 0x3E) + b"\0" * 64
ELF_PIE = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 3, 0x3E) + b"\0" * 64
PE = b"MZ" + b"\0" * 58 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 200
MACHO = b"\xcf\xfa\xed\xfe" + struct.pack("<IIII", 0x01000007, 3, 2, 0) + b"\0" * 200


@pytest.mark.parametrize("head", [ELF_EXEC, ELF_PIE, PE, MACHO], ids=["elf", "elf-pie", "pe", "mach-o"])
def test_default_policy_refuses_native_executables(head: bytes) -> None:
    inspector = MagicInspector(TypePolicy(DEFAULT.filetypes.allow, DEFAULT.filetypes.deny))
    assert not inspector.policy.allows(inspector.detect(head))


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 40, "image/png"),
        (b"%PDF-1.4\n", "application/pdf"),
        (b"#!/bin/sh\necho hi\n", "text/x-shellscript"),
        (b"", "application/octet-stream"),
    ],
)
def test_default_policy_allows_documents_and_scripts(head: bytes, mime: str) -> None:
    inspector = MagicInspector(TypePolicy(DEFAULT.filetypes.allow, DEFAULT.filetypes.deny))
    assert inspector.detect(head) == mime and inspector.policy.allows(mime)


#: Bytes libmagic's header-less "DOS executable (COM)" rule matches (a mov
#: opcode first): random data starts like this about once in a hundred.
COM_LOOKALIKE = bytes.fromhex("b8705a36df7011a6") + bytes(range(256)) * 4


#: Random heads (seeds found by search) for which libmagic words its COM guess
#: differently: "DOS executable (COM)" with a jmp, "... maybe with interrupt 22h",
#: and "DOS executable (COM or COMBOOT 16-bit)".
COM_GUESS_SEEDS = (198, 242, 3008)


@pytest.mark.parametrize(
    "head", [COM_LOOKALIKE, *(random.Random(s).randbytes(8192) for s in COM_GUESS_SEEDS)]
)
def test_a_com_guess_on_random_looking_data_is_not_refused(head: bytes) -> None:
    inspector = MagicInspector(TypePolicy(DEFAULT.filetypes.allow, DEFAULT.filetypes.deny))
    assert inspector._magic.from_buffer(head) == "application/x-dosexec"  # libmagic guesses DOS
    assert inspector.detect(head) == "application/octet-stream"
    assert inspector.detect(PE) != "application/octet-stream"  # a real MZ/PE program keeps its type


def test_random_data_is_accepted_by_the_default_policy() -> None:
    inspector = MagicInspector(TypePolicy(DEFAULT.filetypes.allow, DEFAULT.filetypes.deny))
    rng = random.Random(20261130)
    heads = [rng.randbytes(8192) for _ in range(3000)]
    refused = [h[:8].hex() for h in heads if not inspector.policy.allows(inspector.detect(h))]
    assert refused == []


@pytest.mark.gen_test
async def test_inspect_raises_415_naming_the_type() -> None:
    inspector = MagicInspector(TypePolicy(("image/*",), ()))
    with pytest.raises(errors.UnsupportedMediaType, match="application/pdf") as caught:
        await inspector.inspect(INFO, b"%PDF-1.4\n")
    assert caught.value.status == 415
    assert await inspector.inspect(INFO, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + b"\0" * 40) == "image/png"


def test_build_inspector_honours_enabled() -> None:
    assert build_inspector(load_config(environ={}, overrides={"filetypes.enabled": False})) is None
    assert isinstance(build_inspector(DEFAULT), MagicInspector)


@pytest.mark.parametrize("pattern", ["image", "*/*x", "a b/c", ""])
def test_bad_patterns_are_config_errors(pattern: str) -> None:
    with pytest.raises(ConfigError, match="filetypes.allow"):
        load_config(environ={}, overrides={"filetypes.allow": [pattern]})
