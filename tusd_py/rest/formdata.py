"""Streaming extraction of one file field from a ``multipart/form-data`` body.

Built on python-multipart's push parser: each :meth:`FileFieldExtractor.feed`
returns the bytes of the wanted field contained in that chunk (never more than
the chunk itself, so memory stays bounded by the read size); other fields are
skipped without being kept. Part headers are bounded by the parser
(``max_header_count`` / ``max_header_size``).
"""

from __future__ import annotations

import posixpath

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from tusd_py.core import errors

MULTIPART_TYPE = "multipart/form-data"
#: Bound on the headers of one part (names + values), whatever the parser version.
MAX_PART_HEADER_BYTES = 16 * 1024


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a ``multipart/form-data`` Content-Type.

    Raises :class:`errors.InvalidMultipart` when it is missing or too long."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise errors.InvalidMultipart("Content-Type multipart/form-data needs a boundary (1-200 characters)")
    return boundary


def _clean_filename(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").replace("\\", "/")
    return posixpath.basename(text).strip()


class FileFieldExtractor:
    """Yields the bytes of the first part named ``field`` of a multipart body.

    ``filename`` and ``content_type`` describe that part once its headers have
    been parsed (``found`` is then True).
    """

    def __init__(self, boundary: bytes, field: str = "file") -> None:
        self.field = field.encode()
        self.found = False
        self.filename: str | None = None
        self.content_type: str | None = None
        self._in_field = False
        self._field_done = False
        self._ended = False
        self._out: list[bytes] = []
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._header_bytes = 0
        self._parser = MultipartParser(
            boundary,
            callbacks={
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            },
        )

    @property
    def complete(self) -> bool:
        """True once the wanted part has ended (later parts do not matter)."""
        return self._field_done

    def feed(self, chunk: bytes) -> list[bytes]:
        """Parse ``chunk``; return the field's bytes found in it, in order.

        Raises :class:`errors.InvalidMultipart` for a malformed body."""
        if self._ended:
            return []
        try:
            self._parser.write(chunk)
        except MultipartParseError as exc:
            raise errors.InvalidMultipart(f"malformed multipart/form-data body: {exc}") from None
        out, self._out = self._out, []
        return out

    def finish(self) -> None:
        """The body ended: raise :class:`errors.InvalidMultipart` unless the
        wanted part was found and complete."""
        if not self.found:
            raise errors.InvalidMultipart(
                f"the multipart body has no part named {self.field.decode()!r} (send the file as that field)"
            )
        if not self._field_done:
            raise errors.InvalidMultipart(
                f"the multipart body ended inside the {self.field.decode()!r} part (truncated body?)"
            )

    # --- parser callbacks -----------------------------------------------------

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_bytes = 0

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        self._check_header_size(end - start)

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header_size(end - start)

    def _check_header_size(self, added: int) -> None:
        self._header_bytes += added
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise errors.InvalidMultipart(
                f"the headers of a multipart part exceed {MAX_PART_HEADER_BYTES} bytes"
            )

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        if self.found:
            return
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") != self.field:
            return
        self.found = True
        self._in_field = True
        filename = params.get(b"filename")
        self.filename = _clean_filename(filename) if filename else None
        kind = self._headers.get(b"content-type")
        self.content_type = kind.decode("latin-1").strip()[:200] if kind else None

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_field and end > start:
            self._out.append(bytes(data[start:end]))

    def _on_part_end(self) -> None:
        if self._in_field:
            self._in_field = False
            self._field_done = True

    def _on_end(self) -> None:
        self._ended = True
