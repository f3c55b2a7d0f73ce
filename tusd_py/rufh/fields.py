"""Structured fields (RFC 9651) of the draft, parsed and serialised with ``http_sf``.

Every parser returns a value or raises :class:`errors.InvalidHeader` (400)
naming the field and what was expected; none raises anything else.

``http_sf`` (with ``decimal``) is imported by the functions, on the first
draft request, not when a tus-only server starts.
"""

from __future__ import annotations

from collections.abc import Mapping

from tusd_py.core import errors

_MAX_FIELD = 1024


def _item(name: str, raw: str) -> object:
    import http_sf

    if len(raw) > _MAX_FIELD:
        raise errors.InvalidHeader(f"{name} is longer than {_MAX_FIELD} characters")
    try:
        parsed = http_sf.parse(raw.encode("latin-1", "replace"), tltype="item")
    except (http_sf.StructuredFieldError, ValueError, TypeError):
        raise errors.InvalidHeader(f"{name} is not a valid structured field: {raw[:40]!r}") from None
    return parsed[0] if isinstance(parsed, tuple) else None


def parse_boolean(name: str, raw: str) -> bool:
    """A Boolean field (``?0``/``?1``)."""
    value = _item(name, raw)
    if not isinstance(value, bool):
        raise errors.InvalidHeader(f"{name} must be ?0 or ?1, got {raw[:40]!r}")
    return value


def parse_integer(name: str, raw: str) -> int:
    """A non-negative Integer field."""
    value = _item(name, raw)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.InvalidHeader(f"{name} must be a non-negative integer, got {raw[:40]!r}")
    return value


def parse_offset(raw: str | None) -> int:
    """``Upload-Offset`` (required): 400 ``ERR_INVALID_OFFSET`` when missing or malformed."""
    if raw is None:
        raise errors.InvalidOffset("Upload-Offset is required")
    try:
        return parse_integer("Upload-Offset", raw)
    except errors.InvalidHeader as exc:
        raise errors.InvalidOffset(exc.message) from None


def parse_length(raw: str) -> int:
    """``Upload-Length``: 400 ``ERR_INVALID_LENGTH`` when malformed."""
    try:
        return parse_integer("Upload-Length", raw)
    except errors.InvalidHeader as exc:
        raise errors.InvalidLength(exc.message) from None


def parse_digests(name: str, raw: str) -> dict[str, bytes]:
    """A digest Dictionary (RFC 9530): algorithm → Byte Sequence."""
    import http_sf

    if len(raw) > 4 * _MAX_FIELD:
        raise errors.InvalidChecksum(f"{name} is too long")
    try:
        parsed = http_sf.parse(raw.encode("latin-1", "replace"), tltype="dictionary")
    except (http_sf.StructuredFieldError, ValueError, TypeError):
        raise errors.InvalidChecksum(f"{name} is not a valid structured dictionary") from None
    result: dict[str, bytes] = {}
    assert isinstance(parsed, dict)
    for key, member in parsed.items():
        value = member[0] if isinstance(member, tuple) else None
        if not isinstance(value, bytes):
            raise errors.InvalidChecksum(f"{name} member {key!r} must be a byte sequence (:base64:)")
        result[str(key)] = value
    return result


def boolean(value: bool) -> str:
    """``?1`` or ``?0``."""
    import http_sf

    return http_sf.ser(value)


def integer(value: int) -> str:
    import http_sf

    return http_sf.ser(value)


def dictionary(members: Mapping[str, int | bytes]) -> str:
    """A Dictionary of bare Integers or Byte Sequences, in the given order."""
    import http_sf

    return http_sf.ser(dict(members))


def parse_preferences(name: str, raw: str) -> dict[str, int]:
    """A preference Dictionary (``Want-*-Digest``): key → Integer weight."""
    import http_sf

    try:
        parsed = http_sf.parse(raw.encode("latin-1", "replace"), tltype="dictionary")
    except (http_sf.StructuredFieldError, ValueError, TypeError):
        raise errors.InvalidHeader(f"{name} is not a valid structured dictionary") from None
    assert isinstance(parsed, dict)
    result: dict[str, int] = {}
    for key, member in parsed.items():
        value = member[0] if isinstance(member, tuple) else None
        if isinstance(value, int) and not isinstance(value, bool):
            result[str(key)] = value
    return result
