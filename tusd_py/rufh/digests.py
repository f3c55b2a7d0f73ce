"""Integrity fields of RFC 9530 on draft requests: ``Content-Digest`` and ``Repr-Digest``.

``Content-Digest`` covers the request content, so it is checked like a tus
``Upload-Checksum`` (the body is staged, hashed and stored only if it
matches). ``Repr-Digest`` covers the whole representation: it is checked the
same way when the request carries all of it (creation from offset 0 that
completes the upload), and against the upload's recorded whole-upload digest
when known. Algorithms other than sha-256/sha-512 are ignored, as RFC 9530
allows; with both present, sha-512 is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tusd_py.core import errors, protocol
from tusd_py.rufh import fields

#: RFC 9530 algorithm names → tusd-py checksum algorithms, strongest first.
ALGORITHMS: Final = {"sha-512": "sha512", "sha-256": "sha256"}
_SIZES: Final = {"sha512": 64, "sha256": 32}


def pick(name: str, raw: str | None) -> protocol.Checksum | None:
    """The strongest supported digest of field ``name`` (None if none is usable)."""
    if raw is None:
        return None
    digests = fields.parse_digests(name, raw)
    for rfc_name, algorithm in ALGORITHMS.items():
        digest = digests.get(rfc_name)
        if digest is None:
            continue
        if len(digest) != _SIZES[algorithm]:
            raise errors.InvalidChecksum(
                f"{name} {rfc_name} must be {_SIZES[algorithm]} bytes, got {len(digest)}"
            )
        return protocol.Checksum(algorithm, digest)
    return None


def request_checksum(headers: Mapping[str, str], *, whole: bool) -> protocol.Checksum | None:
    """The digest the body must match: ``Content-Digest``, else ``Repr-Digest``
    when the body is the whole representation (``whole``). Both present and
    ``whole``: they must agree (same content, no content coding)."""
    content = pick("Content-Digest", headers.get("Content-Digest"))
    if not whole:
        return content
    representation = pick("Repr-Digest", headers.get("Repr-Digest"))
    if content is not None and representation is not None:
        if content.algorithm == representation.algorithm and content.digest != representation.digest:
            raise errors.ChecksumMismatch(
                "Content-Digest and Repr-Digest differ although the request carries the whole upload"
            )
    return content or representation


def wanted(headers: Mapping[str, str]) -> bool:
    """The request asks for the representation digest (``Want-Repr-Digest``
    naming sha-256 or sha-512 with a non-zero preference)."""
    raw = headers.get("Want-Repr-Digest")
    if raw is None:
        return False
    try:
        prefs = fields.parse_preferences("Want-Repr-Digest", raw)
    except errors.InvalidHeader:
        return False
    return any(prefs.get(name, 0) > 0 for name in ALGORITHMS)


def repr_digest_field(checksum: str | None) -> str | None:
    """``Repr-Digest`` for a recorded ``"<algorithm>:<hex>"`` whole-upload checksum."""
    if not checksum:
        return None
    algorithm, _, hex_digest = checksum.partition(":")
    for rfc_name, ours in ALGORITHMS.items():
        if ours == algorithm:
            return fields.dictionary({rfc_name: bytes.fromhex(hex_digest)})
    return None
