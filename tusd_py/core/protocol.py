"""tus 1.0.0 constants and header parsers: pure functions, no I/O.

Every parser either returns a value or raises a :mod:`tusd_py.core.errors`
``InvalidHeader`` subclass with a message a person can act on; none raises
anything else for any input (the suite fuzzes them with hypothesis).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from tusd_py.core import errors

TUS_VERSION: Final = "1.0.0"
SUPPORTED_VERSIONS: Final = (TUS_VERSION,)
OFFSET_CONTENT_TYPE: Final = "application/offset+octet-stream"
CHECKSUM_ALGORITHMS: Final = ("sha1", "md5", "sha256", "sha512", "crc32")

#: Upload ids are 32 lowercase hex characters (128 random bits).
UPLOAD_ID_RE: Final = re.compile(r"[0-9a-f]{32}")
_DIGITS_RE: Final = re.compile(r"[0-9]+")
_META_KEY_RE: Final = re.compile(r"[!-+\--~]+")  # printable ASCII except space and comma
MAX_METADATA_BYTES: Final = 16 * 1024
MAX_INT: Final = (1 << 63) - 1

#: Headers a browser client may send (CORS preflight) and read (expose).
CORS_ALLOW_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Upload-Length",
    "Upload-Offset",
    "Tus-Resumable",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Checksum",
    "X-HTTP-Method-Override",
    "X-Request-ID",
    "X-Requested-With",
    "Idempotency-Key",
    "X-Filename",
    "Range",
    "If-None-Match",
)
CORS_EXPOSE_HEADERS: Final = (
    "Upload-Offset",
    "Location",
    "Upload-Length",
    "Tus-Version",
    "Tus-Resumable",
    "Tus-Max-Size",
    "Tus-Extension",
    "Tus-Checksum-Algorithm",
    "Upload-Metadata",
    "Upload-Defer-Length",
    "Upload-Concat",
    "Upload-Expires",
    "Upload-Checksum",
    "X-Request-ID",
    "Retry-After",
    "Content-Range",
    "Content-Disposition",
    "ETag",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
)
CORS_METHODS: Final = ("POST", "HEAD", "PATCH", "OPTIONS", "GET", "DELETE")


def new_upload_id() -> str:
    """A fresh, unguessable upload id (128 bits of randomness, hex)."""
    return secrets.token_hex(16)


def is_valid_upload_id(value: str) -> bool:
    """True if ``value`` has the exact shape of an upload id."""
    return UPLOAD_ID_RE.fullmatch(value) is not None


def parse_non_negative_int(value: str | None, error: type[errors.TusError], name: str) -> int:
    """Parse a header holding a non-negative decimal integer.

    Raises ``error`` naming ``name`` for a missing value, signs, decimals or
    whitespace inside ("must be a non-negative integer"), and for values
    beyond 2**63-1 ("exceeds the maximum 9223372036854775807").
    """
    if value is None:
        raise error(f"{name} header is required")
    text = value.strip()
    if _DIGITS_RE.fullmatch(text) is None:
        raise error(f"{name} must be a non-negative integer, got {value[:40]!r}")
    if exceeds_int64(text):
        raise error(f"{name} {abbreviate_digits(text)} exceeds the maximum {MAX_INT}")
    return int(text.lstrip("0") or "0")


def exceeds_int64(text: str) -> bool:
    """True if ``text``, a string of ASCII digits, is a number beyond 2**63-1
    (decided without converting huge strings)."""
    digits = text.lstrip("0")
    return len(digits) > 19 or (len(digits) == 19 and int(digits) > MAX_INT)


def abbreviate_digits(text: str) -> str:
    """A long digit string shortened for a message: ``1000…000 (31 digits)``."""
    if len(text) <= 24:
        return text
    return f"{text[:8]}…{text[-3:]} ({len(text)} digits)"


def parse_offset(value: str | None) -> int:
    """Parse ``Upload-Offset``; raises :class:`errors.InvalidOffset`."""
    return parse_non_negative_int(value, errors.InvalidOffset, "Upload-Offset")


def parse_length(value: str | None) -> int:
    """Parse ``Upload-Length``; raises :class:`errors.InvalidLength`."""
    return parse_non_negative_int(value, errors.InvalidLength, "Upload-Length")


def parse_defer_length(value: str) -> bool:
    """``Upload-Defer-Length`` must be exactly ``1``; raises :class:`errors.InvalidLength`."""
    if value.strip() != "1":
        raise errors.InvalidLength(f"Upload-Defer-Length must be 1, got {value[:40]!r}")
    return True


def parse_metadata(value: str | None) -> dict[str, bytes]:
    """Parse ``Upload-Metadata`` into ``{key: raw value bytes}``.

    Pairs are comma separated; key and base64 value are separated by one space;
    the value (and its space) may be omitted. Keys must be non-empty printable
    ASCII without spaces or commas, and unique. Raises
    :class:`errors.InvalidMetadata` for anything else.
    """
    if value is None or value.strip() == "":
        return {}
    if len(value) > MAX_METADATA_BYTES:
        raise errors.InvalidMetadata(
            f"Upload-Metadata is {len(value)} bytes; the limit is {MAX_METADATA_BYTES}"
        )
    result: dict[str, bytes] = {}
    for raw_pair in value.split(","):
        pair = raw_pair.strip()
        if not pair:
            raise errors.InvalidMetadata("Upload-Metadata has an empty pair")
        parts = pair.split(" ")
        if len(parts) > 2:
            raise errors.InvalidMetadata(f"Upload-Metadata pair {pair[:40]!r} has more than one space")
        key = parts[0]
        if _META_KEY_RE.fullmatch(key) is None:
            raise errors.InvalidMetadata(f"Upload-Metadata key {key[:40]!r} is not valid")
        if key in result:
            raise errors.InvalidMetadata(f"Upload-Metadata key {key[:40]!r} appears twice")
        encoded = parts[1] if len(parts) == 2 else ""
        try:
            result[key] = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise errors.InvalidMetadata(
                f"Upload-Metadata value of {key[:40]!r} is not valid base64"
            ) from None
    return result


def encode_metadata(metadata: dict[str, bytes]) -> str:
    """The inverse of :func:`parse_metadata` (canonical form)."""
    pairs = []
    for key, raw in metadata.items():
        if raw:
            pairs.append(f"{key} {base64.b64encode(raw).decode('ascii')}")
        else:
            pairs.append(key)
    return ",".join(pairs)


@dataclass(frozen=True, slots=True)
class ConcatHeader:
    """A parsed ``Upload-Concat`` header."""

    kind: Literal["partial", "final"]
    #: For a final upload: the referenced upload ids, in order.
    partial_ids: tuple[str, ...] = ()


def parse_concat(value: str, base_path: str) -> ConcatHeader:
    """Parse ``Upload-Concat``: ``partial`` or ``final;<url> <url>...``.

    URLs may be absolute or relative; each must end in ``<base_path><id>``
    with a valid id. Raises :class:`errors.InvalidConcat`.
    """
    text = value.strip()
    if text == "partial":
        return ConcatHeader("partial")
    if not text.startswith("final;"):
        raise errors.InvalidConcat(f"Upload-Concat must be 'partial' or 'final;...', got {text[:40]!r}")
    urls = text[len("final;") :].split()
    if not urls:
        raise errors.InvalidConcat("Upload-Concat final lists no partial uploads")
    if len(urls) > 10_000:
        raise errors.InvalidConcat("Upload-Concat final lists more than 10000 partial uploads")
    ids = []
    for url in urls:
        path = url
        if "://" in url:
            rest = url.split("://", 1)[1]
            slash = rest.find("/")
            path = rest[slash:] if slash >= 0 else "/"
        path = path.split("?", 1)[0]
        if not path.startswith(base_path):
            raise errors.InvalidConcat(f"Upload-Concat URL {url[:80]!r} is not an upload of this server")
        upload_id = path[len(base_path) :].rstrip("/")
        if not is_valid_upload_id(upload_id):
            raise errors.InvalidConcat(f"Upload-Concat URL {url[:80]!r} does not name a valid upload id")
        ids.append(upload_id)
    return ConcatHeader("final", tuple(ids))


@dataclass(frozen=True, slots=True)
class Checksum:
    """A parsed ``Upload-Checksum`` header."""

    algorithm: str
    digest: bytes


_DIGEST_SIZES: Final = {"sha1": 20, "md5": 16, "sha256": 32, "sha512": 64, "crc32": 4}


def parse_checksum(value: str) -> Checksum:
    """Parse ``Upload-Checksum: <alg> <base64 digest>``.

    Raises :class:`errors.UnsupportedChecksumAlgorithm` for an unknown
    algorithm and :class:`errors.InvalidChecksum` for any other malformation.
    """
    parts = value.strip().split(" ")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise errors.InvalidChecksum(
            f"Upload-Checksum must be '<algorithm> <base64 digest>', got {value[:60]!r}"
        )
    algorithm = parts[0]
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise errors.UnsupportedChecksumAlgorithm(
            f"checksum algorithm {algorithm[:20]!r} is not supported; use one of "
            + ", ".join(CHECKSUM_ALGORITHMS)
        )
    try:
        digest = base64.b64decode(parts[1].encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise errors.InvalidChecksum("Upload-Checksum digest is not valid base64") from None
    if len(digest) != _DIGEST_SIZES[algorithm]:
        raise errors.InvalidChecksum(
            f"Upload-Checksum {algorithm} digest must be {_DIGEST_SIZES[algorithm]} bytes, got {len(digest)}"
        )
    return Checksum(algorithm, digest)


def parse_range(value: str, length: int) -> tuple[int, int] | None:
    """Parse a ``Range`` header against a representation of ``length`` bytes.

    Returns ``(start, end_inclusive)`` for one satisfiable byte range, or None
    when the header should be ignored (another unit, or several ranges: the
    full body is served). Raises :class:`errors.InvalidRange` for malformed
    byte ranges and :class:`errors.RangeNotSatisfiable` when the range lies
    beyond the end.
    """
    text = value.strip()
    if not text.lower().startswith("bytes="):
        return None
    spec = text[len("bytes=") :].strip()
    if "," in spec:
        return None
    match = re.fullmatch(r"(\d{0,19})-(\d{0,19})", spec)
    if match is None or (match.group(1) == "" and match.group(2) == ""):
        raise errors.InvalidRange(f"Range {value[:60]!r} is not 'bytes=start-end'")
    first, last = match.group(1), match.group(2)
    if first == "":
        suffix = int(last)
        if suffix == 0 or length == 0:
            raise errors.RangeNotSatisfiable(
                f"range {value[:60]!r} not satisfiable for {length} bytes",
                headers={"Content-Range": f"bytes */{length}"},
            )
        return max(0, length - suffix), length - 1
    start = int(first)
    if last and int(last) < start:
        raise errors.InvalidRange(f"Range {value[:60]!r} ends before it starts")
    end = int(last) if last else length - 1
    if start >= length:
        raise errors.RangeNotSatisfiable(
            f"range {value[:60]!r} not satisfiable for {length} bytes",
            headers={"Content-Range": f"bytes */{length}"},
        )
    return start, min(end, length - 1)


_DAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_NAMES: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(timestamp: float) -> str:
    """RFC 9110 IMF-fixdate, e.g. ``Wed, 25 Jun 2014 16:00:00 GMT`` (what
    ``email.utils.formatdate(timestamp, usegmt=True)`` writes, a third of its cost)."""
    t = time.gmtime(timestamp)
    return (
        f"{_DAY_NAMES[t.tm_wday]}, {t.tm_mday:02d} {_MONTH_NAMES[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


class HttpDates:
    """:func:`http_date` of whole seconds, each formatted once while it is
    asked for: the ``Date`` of every response and the ``Upload-Expires`` of
    uploads touched in the same second repeat the same few strings.
    Holds at most ``size`` seconds (then starts over). One per process,
    used from the IOLoop only (not thread-safe)."""

    def __init__(self, size: int = 64, clock: Callable[[], float] = time.time) -> None:
        self._texts: dict[int, str] = {}
        self._size = size
        self._clock = clock

    def format(self, timestamp: float) -> str:
        """``http_date(timestamp)``."""
        second = int(timestamp)
        text = self._texts.get(second)
        if text is None:
            if len(self._texts) >= self._size:
                self._texts.clear()
            text = self._texts[second] = http_date(second)
        return text

    def now(self) -> str:
        """The ``Date`` header value for a response sent now."""
        return self.format(self._clock())


_UNSAFE_FILENAME_RE: Final = re.compile(r"[^A-Za-z0-9._ ()+\-]")


def safe_filename(name: str, fallback: str) -> str:
    """A filename safe to reflect into ``Content-Disposition``.

    Keeps letters, digits and ``._ ()+-``; replaces anything else (quotes,
    CR/LF, slashes, non-ASCII) with ``_``; never empty, at most 200 chars.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_FILENAME_RE.sub("_", base).strip(" .")[:200]
    return cleaned or fallback
