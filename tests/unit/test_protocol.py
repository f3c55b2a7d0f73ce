"""``tusd_py.core.protocol``: header parsers, round trips and fuzzing (SPEC §12).

Every parser, given any text, either returns a value or raises an
``InvalidHeader`` subclass (``parse_range`` may also raise
``RangeNotSatisfiable``, its 416); nothing else ever escapes.
"""

from __future__ import annotations

import base64
import re
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tusd_py.core import errors, protocol

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Header values as Tornado hands them over: latin-1 text without CR/LF/NUL.
header_text = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=255, blacklist_characters="\r\n"),
    max_size=200,
)
#: Texts built from the characters that matter to each grammar.
tus_ish = st.text(alphabet="0123456789abcdef -,;=:/+.final partial sha1md5crc32bytes=\t", max_size=80)
any_header = st.one_of(header_text, tus_ish)
upload_ids = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
meta_keys = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
    min_size=1,
    max_size=20,
)


# --- integers --------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0", "1", "007", " 42 ", str(protocol.MAX_INT)])
def test_non_negative_ints_parse(text: str) -> None:
    assert protocol.parse_offset(text) == int(text)
    assert protocol.parse_length(text) == int(text)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        " ",
        "-1",
        "+1",
        "1.5",
        "1e3",
        "abc",
        "0x10",
        "1 2",
        "\u0661",
        str(protocol.MAX_INT + 1),
        "9" * 20,
    ],
)
def test_invalid_ints_raise_named_errors(text: str | None) -> None:
    with pytest.raises(errors.InvalidOffset, match="Upload-Offset"):
        protocol.parse_offset(text)
    with pytest.raises(errors.InvalidLength, match="Upload-Length"):
        protocol.parse_length(text)


@FUZZ
@given(st.integers(min_value=0, max_value=protocol.MAX_INT))
def test_int_round_trip(value: int) -> None:
    assert protocol.parse_offset(str(value)) == value


@FUZZ
@given(any_header)
def test_fuzz_offset_and_length(text: str) -> None:
    for parse, error in (
        (protocol.parse_offset, errors.InvalidOffset),
        (protocol.parse_length, errors.InvalidLength),
    ):
        try:
            value = parse(text)
        except error:
            continue
        assert 0 <= value <= protocol.MAX_INT
        assert str(value) == text.strip().lstrip("0") or value == 0


@FUZZ
@given(any_header)
@example("1")
def test_fuzz_defer_length(text: str) -> None:
    try:
        assert protocol.parse_defer_length(text) is True
        assert text.strip() == "1"
    except errors.InvalidLength:
        assert text.strip() != "1"


# --- metadata ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("filename d29ybGQ=", {"filename": b"world"}),
        ("is_confidential", {"is_confidential": b""}),
        ("a YQ==,b,c Yw==", {"a": b"a", "b": b"", "c": b"c"}),
        (" a YQ== , b ", {"a": b"a", "b": b""}),
        ("k ", {"k": b""}),
    ],
)
def test_metadata_examples(text: str, expected: dict[str, bytes]) -> None:
    assert protocol.parse_metadata(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a YQ==,a Yg==",  # duplicate key
        "a YQ==,,b",  # empty pair
        "a b c",  # two spaces
        "a  YQ==",
        "a !!!",  # not base64
        "a YQ",  # unpadded
        "k\u00e9y YQ==",  # non-ASCII key
        "a \u00ff",
        "k " + "QUFB" * 5000,  # too large
    ],
)
def test_metadata_errors(text: str) -> None:
    with pytest.raises(errors.InvalidMetadata):
        protocol.parse_metadata(text)


@FUZZ
@given(st.dictionaries(meta_keys, st.binary(max_size=40), max_size=6))
def test_metadata_round_trip(pairs: dict[str, bytes]) -> None:
    encoded = protocol.encode_metadata(pairs)
    assert protocol.parse_metadata(encoded) == pairs
    assert protocol.encode_metadata(protocol.parse_metadata(encoded)) == encoded


@FUZZ
@given(any_header)
@example("a YQ==,a")
@example(",")
def test_fuzz_metadata(text: str) -> None:
    try:
        parsed = protocol.parse_metadata(text)
    except errors.InvalidMetadata:
        return
    for key in parsed:
        assert key and " " not in key and "," not in key and key.isascii()


# --- concat -------------------------------------------------------------------------


def test_concat_partial() -> None:
    assert protocol.parse_concat(" partial ", "/files/") == protocol.ConcatHeader("partial")


@FUZZ
@given(
    st.lists(
        st.tuples(upload_ids, st.sampled_from(["", "http://h", "https://h.example:8443"])),
        min_size=1,
        max_size=8,
    )
)
def test_concat_final_round_trip(refs: list[tuple[str, str]]) -> None:
    header = "final;" + " ".join(f"{origin}/files/{i}" for i, origin in refs)
    parsed = protocol.parse_concat(header, "/files/")
    assert parsed.kind == "final"
    assert parsed.partial_ids == tuple(i for i, _ in refs)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "final",
        "final;",
        "final; ",
        "Partial",
        "partial;x",
        "final;/other/" + "a" * 32,
        "final;/files/../" + "a" * 31,
        "final;/files/" + "A" * 32,
        "final;http://host",
        "final;" + " ".join(["x"] * 10_001),
    ],
)
def test_concat_errors(text: str) -> None:
    with pytest.raises(errors.InvalidConcat):
        protocol.parse_concat(text, "/files/")


@FUZZ
@given(any_header, st.sampled_from(["/files/", "/", "/a/b/"]))
@example("final;/files/" + "0" * 32 + "?x=1", "/files/")
@example("final;https:///files/" + "0" * 32, "/files/")
def test_fuzz_concat(text: str, base: str) -> None:
    try:
        parsed = protocol.parse_concat(text, base)
    except errors.InvalidConcat:
        return
    assert all(protocol.is_valid_upload_id(i) for i in parsed.partial_ids)
    assert (parsed.kind == "partial") == (parsed.partial_ids == ())


# --- checksum -------------------------------------------------------------------------

SIZES = {"sha1": 20, "md5": 16, "sha256": 32, "sha512": 64, "crc32": 4}


@FUZZ
@given(st.sampled_from(sorted(SIZES)), st.data())
def test_checksum_round_trip(algorithm: str, data: st.DataObject) -> None:
    digest = data.draw(st.binary(min_size=SIZES[algorithm], max_size=SIZES[algorithm]))
    parsed = protocol.parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert parsed == protocol.Checksum(algorithm, digest)


def test_every_advertised_algorithm_parses() -> None:
    assert set(protocol.CHECKSUM_ALGORITHMS) == set(SIZES)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("sha384 " + base64.b64encode(b"x" * 48).decode(), errors.UnsupportedChecksumAlgorithm),
        ("SHA1 " + base64.b64encode(b"x" * 20).decode(), errors.UnsupportedChecksumAlgorithm),
        ("sha1", errors.InvalidChecksum),
        ("", errors.InvalidChecksum),
        ("sha1 ", errors.InvalidChecksum),
        ("sha1 !!", errors.InvalidChecksum),
        ("sha1 " + base64.b64encode(b"x" * 19).decode(), errors.InvalidChecksum),
        ("sha1  " + base64.b64encode(b"x" * 20).decode(), errors.InvalidChecksum),
        ("sha1 \u00ff", errors.InvalidChecksum),
    ],
)
def test_checksum_errors(text: str, error: type[errors.TusError]) -> None:
    with pytest.raises(error):
        protocol.parse_checksum(text)


@FUZZ
@given(any_header)
def test_fuzz_checksum(text: str) -> None:
    try:
        parsed = protocol.parse_checksum(text)
    except errors.InvalidHeader:
        return
    assert len(parsed.digest) == SIZES[parsed.algorithm]


# --- range -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "length", "expected"),
    [
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-", 10, (0, 9)),
        ("bytes=3-5", 10, (3, 5)),
        ("bytes=3-500", 10, (3, 9)),
        ("bytes=-4", 10, (6, 9)),
        ("bytes=-40", 10, (0, 9)),
        ("BYTES=1-2", 10, (1, 2)),
        (" bytes = 1-2", 10, None),  # not "bytes=": ignored
        ("bytes=0-1,5-6", 10, None),
        ("items=0-1", 10, None),
    ],
)
def test_range_examples(text: str, length: int, expected: tuple[int, int] | None) -> None:
    assert protocol.parse_range(text, length) == expected


@pytest.mark.parametrize("text", ["bytes=10-", "bytes=10-20", "bytes=-0"])
def test_range_not_satisfiable(text: str) -> None:
    with pytest.raises(errors.RangeNotSatisfiable) as info:
        protocol.parse_range(text, 10)
    assert info.value.headers["Content-Range"] == "bytes */10"


@pytest.mark.parametrize("text", ["bytes=0-", "bytes=-1", "bytes=0-0"])
def test_range_on_empty_representation(text: str) -> None:
    with pytest.raises(errors.RangeNotSatisfiable):
        protocol.parse_range(text, 0)


@pytest.mark.parametrize(
    "text", ["bytes=", "bytes=-", "bytes=a-b", "bytes=5-3", "bytes=1-2-3", "bytes=" + "1" * 20 + "-"]
)
def test_range_malformed(text: str) -> None:
    with pytest.raises(errors.InvalidRange):
        protocol.parse_range(text, 10)


@FUZZ
@given(
    st.one_of(any_header, st.from_regex(r"bytes=\d{0,4}-\d{0,4}", fullmatch=True)),
    st.integers(min_value=0, max_value=5000),
)
def test_fuzz_range(text: str, length: int) -> None:
    try:
        parsed = protocol.parse_range(text, length)
    except (errors.InvalidHeader, errors.RangeNotSatisfiable):
        return
    if parsed is not None:
        start, end = parsed
        assert 0 <= start <= end < length


# --- ids, dates, filenames -----------------------------------------------------------------


def test_new_upload_ids_are_valid_and_distinct() -> None:
    ids = {protocol.new_upload_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(protocol.is_valid_upload_id(i) for i in ids)


@pytest.mark.parametrize(
    "text", ["", "a" * 31, "a" * 33, "A" * 32, "../" + "a" * 29, "g" * 32, "a" * 31 + "\n"]
)
def test_invalid_upload_ids(text: str) -> None:
    assert not protocol.is_valid_upload_id(text)


@FUZZ
@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_http_date_is_imf_fixdate(timestamp: float) -> None:
    text = protocol.http_date(timestamp)
    assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", text)
    assert abs(parsedate_to_datetime(text).timestamp() - timestamp) <= 1


@FUZZ
@given(st.text(max_size=400))
@example('a"b\r\nc')
@example("..")
def test_fuzz_safe_filename(name: str) -> None:
    safe = protocol.safe_filename(name, "fallback")
    assert 0 < len(safe) <= 200
    assert re.fullmatch(r"[A-Za-z0-9._ ()+\-]+", safe)
    assert safe not in (".", "..")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../x.txt", "x.txt"),
        ("C:\\a\\b.txt", "b.txt"),
        ('"', "_"),
        ("", "fb"),
        ("..", "fb"),
    ],
)
def test_safe_filename_examples(name: str, expected: str) -> None:
    assert protocol.safe_filename(name, "fb") == expected
