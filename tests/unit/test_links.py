"""Signed download links: round trip, expiry, tampering."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from tests.fakes import FakeClock
from tusd_py.auth.links import LinkSigner
from tusd_py.core import auth_errors

SECRET = "k" * 64
UPLOAD = "0123456789abcdef0123456789abcdef"


def params(query: str) -> tuple[str, str]:
    parsed = parse_qs(query)
    return parsed["expires"][0], parsed["signature"][0]


def test_round_trip_until_expiry() -> None:
    clock = FakeClock(1_000_000.0)
    signer = LinkSigner(SECRET, 600.0, clock)
    link = signer.sign(UPLOAD)
    assert link.expires_at == 1_000_600
    expires, sig = params(link.query)
    signer.verify(UPLOAD, expires, sig)
    clock.advance(600)
    signer.verify(UPLOAD, expires, sig)
    clock.advance(1)
    with pytest.raises(auth_errors.LinkExpired):
        signer.verify(UPLOAD, expires, sig)


def test_ttl_is_capped_by_configured_ttl() -> None:
    signer = LinkSigner(SECRET, 600.0, FakeClock(0.0))
    assert signer.sign(UPLOAD, ttl=60).expires_at == 60
    assert signer.sign(UPLOAD, ttl=10_000).expires_at == 600


@pytest.mark.parametrize("part", ["id", "expires", "signature", "secret"])
def test_tampering_is_detected(part: str) -> None:
    clock = FakeClock(1_000_000.0)
    signer = LinkSigner(SECRET, 600.0, clock)
    expires, sig = params(signer.sign(UPLOAD).query)
    upload = UPLOAD
    if part == "id":
        upload = UPLOAD[:-1] + "0"
    elif part == "expires":
        expires = str(int(expires) + 3600)
    elif part == "signature":
        sig = ("A" if sig[0] != "A" else "B") + sig[1:]
    else:
        signer = LinkSigner("j" * 64, 600.0, clock)
    with pytest.raises(auth_errors.LinkInvalid):
        signer.verify(upload, expires, sig)


@pytest.mark.parametrize(("expires", "sig"), [(None, "x"), ("12", None), ("-5", "x"), ("1e9", "x"), ("", "")])
def test_malformed_parameters(expires: str | None, sig: str | None) -> None:
    with pytest.raises(auth_errors.LinkInvalid):
        LinkSigner(SECRET, 600.0).verify(UPLOAD, expires, sig)
