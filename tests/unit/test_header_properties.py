"""Property tests of every request-header parser (hypothesis).

For any input a parser either returns a well-formed value or raises a
:class:`TusError` whose status is a 4xx — never another exception (which would
surface as a 500). Where a parser has an inverse, valid values round-trip.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tusd_py.auth.tokens import JWTAuthenticator, bearer_token, mint_token
from tusd_py.core import auth_errors, errors, protocol
from tusd_py.core.config import Config, load_config

#: Header values as Tornado hands them over: latin-1 text, no CR/LF.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\r\n"),
    max_size=300,
)
#: Mostly-plausible values, so the parsers' deeper branches are reached too.
tokens = st.sampled_from(
    ["", " ", ",", ";", "=", "-", "final;", "partial", "bytes=", "sha256 ", "Bearer ", "0", "9" * 20, "=="]
)
shaped = st.lists(st.one_of(tokens, header_text.map(lambda s: s[:12])), max_size=8).map("".join)
any_header = st.one_of(header_text, shaped)


def refuses_cleanly(parse: Callable[[], Any]) -> Any:
    """Run ``parse``; a refusal must be a 4xx TusError. Returns the value or None."""
    try:
        return parse()
    except errors.TusError as exc:
        assert 400 <= exc.status < 500, f"{type(exc).__name__} has status {exc.status}"
        assert exc.code.startswith("ERR_") and str(exc)
        return None


@given(any_header)
def test_offset_and_length_are_int64_or_refused(value: str) -> None:
    for parse in (protocol.parse_offset, protocol.parse_length):
        result = refuses_cleanly(lambda parse=parse: parse(value))  # type: ignore[misc]
        if result is not None:
            assert 0 <= result <= protocol.MAX_INT
            assert str(result) == value.strip().lstrip("0") or result == 0


@given(st.integers(min_value=0, max_value=protocol.MAX_INT))
def test_offsets_round_trip(number: int) -> None:
    assert protocol.parse_offset(str(number)) == number
    assert protocol.parse_length(f" {number} ") == number


@given(any_header)
def test_metadata_parses_or_is_refused(value: str) -> None:
    result = refuses_cleanly(lambda: protocol.parse_metadata(value))
    if result is not None:
        assert all(isinstance(k, str) and k and " " not in k and "," not in k for k in result)
        assert all(isinstance(v, bytes) for v in result.values())


metadata_keys = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
    min_size=1,
    max_size=20,
)


@given(st.dictionaries(metadata_keys, st.binary(max_size=64), max_size=10))
def test_metadata_round_trips(metadata: dict[str, bytes]) -> None:
    assert protocol.parse_metadata(protocol.encode_metadata(metadata)) == metadata


@given(any_header)
def test_concat_parses_or_is_refused(value: str) -> None:
    result = refuses_cleanly(lambda: protocol.parse_concat(value, "/files/"))
    if result is not None:
        assert result.kind in ("partial", "final")
        assert all(protocol.is_valid_upload_id(i) for i in result.partial_ids)
        assert (result.kind == "final") == bool(result.partial_ids)


@given(st.lists(st.binary(min_size=16, max_size=16).map(bytes.hex), min_size=1, max_size=5), st.booleans())
def test_concat_final_round_trips(ids: list[str], absolute: bool) -> None:
    prefix = "http://127.0.0.1:8080/files/" if absolute else "/files/"
    parsed = protocol.parse_concat("final;" + " ".join(prefix + i for i in ids), "/files/")
    assert parsed.kind == "final" and list(parsed.partial_ids) == ids


@given(any_header)
def test_checksum_parses_or_is_refused(value: str) -> None:
    result = refuses_cleanly(lambda: protocol.parse_checksum(value))
    if result is not None:
        assert result.algorithm in protocol.CHECKSUM_ALGORITHMS and result.digest


@given(st.sampled_from([a for a in protocol.CHECKSUM_ALGORITHMS if a != "crc32"]), st.binary(max_size=64))
def test_checksum_of_real_digests_round_trips(algorithm: str, data: bytes) -> None:
    digest = hashlib.new(algorithm, data).digest()
    parsed = protocol.parse_checksum(f"{algorithm} {base64.b64encode(digest).decode()}")
    assert parsed.algorithm == algorithm and parsed.digest == digest


@given(any_header, st.integers(min_value=0, max_value=1 << 40))
def test_range_is_within_the_representation_or_refused(value: str, length: int) -> None:
    result = refuses_cleanly(lambda: protocol.parse_range(value, length))
    if result is not None:
        start, end = result
        assert 0 <= start <= end < length


@given(st.integers(min_value=1, max_value=1 << 40), st.data())
def test_satisfiable_ranges_round_trip(length: int, data: st.DataObject) -> None:
    start = data.draw(st.integers(min_value=0, max_value=length - 1))
    end = data.draw(st.integers(min_value=start, max_value=length - 1))
    assert protocol.parse_range(f"bytes={start}-{end}", length) == (start, end)


@pytest.fixture(scope="module")
def jwt_config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    data_dir = tmp_path_factory.mktemp("auth")
    return load_config(overrides={"server.data_dir": str(data_dir), "auth.secret": "s" * 40})


@settings(deadline=None)
@given(value=any_header)
def test_authorization_is_a_principal_or_401(jwt_config: Config, value: str) -> None:
    authenticator = JWTAuthenticator.from_config(jwt_config)
    headers = {"Authorization": value}
    try:
        principal = authenticator.authenticate(headers)
    except auth_errors.Unauthenticated as exc:
        assert exc.status == 401 and "WWW-Authenticate" in exc.headers
        return
    assert principal is None or principal.user


@settings(deadline=None)
@given(sub=st.text(min_size=1, max_size=40), tier=st.sampled_from(["basic", "premium", "admin"]))
def test_minted_tokens_authenticate(jwt_config: Config, sub: str, tier: str) -> None:
    token = mint_token(jwt_config, user=sub, tier=tier, ttl=60)
    assert bearer_token({"Authorization": f"Bearer {token}"}) == token
    principal = JWTAuthenticator.from_config(jwt_config).authenticate({"Authorization": f"bearer  {token} "})
    assert principal is not None and principal.user == sub and principal.tier == tier
