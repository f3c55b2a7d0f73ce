"""Streaming extraction of the file field from multipart bodies (tusd_py.rest.formdata)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tusd_py.core import errors
from tusd_py.rest.formdata import FileFieldExtractor, boundary_of

BOUNDARY = b"----b0undary"


def body(data: bytes, *, field: str = "file", filename: str = "x.bin", tail: bool = True) -> bytes:
    out = (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="title"\r\n\r\nhello\r\n'
        b"--"
        + BOUNDARY
        + f'\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'.encode()
        + b"Content-Type: image/png\r\n\r\n"
        + data
    )
    if tail:
        out += (
            b"\r\n--"
            + BOUNDARY
            + b'\r\nContent-Disposition: form-data; name="after"\r\n\r\nz\r\n--'
            + BOUNDARY
            + b"--\r\n"
        )
    return out


def run(raw: bytes, cuts: list[int]) -> tuple[FileFieldExtractor, bytes, int]:
    extractor = FileFieldExtractor(BOUNDARY)
    out = []
    largest = 0
    position = 0
    for cut in sorted(set(cuts)) + [len(raw)]:
        chunk = raw[position:cut]
        position = max(position, cut)
        pieces = extractor.feed(chunk)
        largest = max(largest, sum(len(p) for p in pieces) - len(chunk))
        out += pieces
    return extractor, b"".join(out), largest


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=30),
)
def test_any_chunking_yields_the_file_bytes(data: bytes, cuts: list[int]) -> None:
    # A body containing the boundary text inside the file must still split right.
    data = data.replace(b"\r\n--" + BOUNDARY, b"")
    extractor, got, excess = run(body(data), cuts)
    extractor.finish()
    assert got == data
    assert extractor.filename == "x.bin" and extractor.content_type == "image/png"
    # Output per chunk never exceeds the chunk by more than the held-back boundary look-behind.
    assert excess <= len(BOUNDARY) + 8


def test_filename_path_components_are_dropped() -> None:
    extractor, _, _ = run(body(b"abc", filename="C:\\\\Users\\\\me\\\\a.txt"), [])
    assert extractor.filename == "a.txt"


def test_missing_field_and_truncated_body_are_refused() -> None:
    extractor, _, _ = run(body(b"abc", field="other"), [])
    with pytest.raises(errors.InvalidMultipart, match="no part named 'file'"):
        extractor.finish()
    extractor, got, _ = run(body(b"abcdef" * 100, tail=False), [])
    with pytest.raises(errors.InvalidMultipart, match="ended inside"):
        extractor.finish()


def test_garbage_is_invalid_multipart() -> None:
    with pytest.raises(errors.InvalidMultipart):
        FileFieldExtractor(BOUNDARY).feed(b"this is not multipart at all\r\n" * 10)


@pytest.mark.parametrize(
    "value",
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=" + "x" * 201],
)
def test_bad_boundaries(value: str) -> None:
    with pytest.raises(errors.InvalidMultipart):
        boundary_of(value)
