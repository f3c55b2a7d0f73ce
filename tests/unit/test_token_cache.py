"""The verified-token cache of :class:`JWTAuthenticator`: a token is verified
once and then remembered until ``exp`` + leeway; the cache is bounded; a
token that fails any check is never remembered."""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import jwt
import pytest

from tusd_py.auth.tokencache import MAX_CACHED_TOKEN, VerifiedTokens
from tusd_py.auth.tokens import JWTAuthenticator
from tusd_py.core import auth_errors
from tusd_py.core.config import load_config
from tusd_py.core.models import Principal

SECRET = "c" * 40
T0 = 1_900_000_000.0
LEEWAY = 30.0


class Clock:
    """Wall-clock seconds shared by the cache and PyJWT's claim checks."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> FakeDatetime:
            moment = datetime.fromtimestamp(fake.now, tz)
            return cls.fromtimestamp(moment.timestamp(), tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", FakeDatetime)
    return fake


class CountingAuthenticator(JWTAuthenticator):
    """Counts full verifications (``decode`` calls)."""

    decodes = 0

    def decode(self, token: str) -> dict[str, Any]:
        self.decodes += 1
        return super().decode(token)


def make_auth(tmp_path: Path, clock: Clock, max_entries: int = 16) -> CountingAuthenticator:
    config = load_config(
        environ={},
        overrides={
            "server.data_dir": str(tmp_path / "data"),
            "auth.enabled": True,
            "auth.secret": SECRET,
            "auth.leeway": LEEWAY,
        },
    )
    return CountingAuthenticator(config, key=SECRET, cache=VerifiedTokens(max_entries, clock=clock))


def token(sub: str = "alice", exp: float = T0 + 100, secret: str = SECRET, **claims: Any) -> str:
    return jwt.encode({"sub": sub, "exp": int(exp), "iat": int(T0), **claims}, secret, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def refused(auth: JWTAuthenticator, value: str) -> str:
    with pytest.raises(auth_errors.Unauthenticated) as info:
        auth.authenticate(bearer(value))
    assert info.value.status == 401
    return info.value.message


def test_a_verified_token_is_remembered_until_exp_plus_leeway(tmp_path: Path, clock: Clock) -> None:
    auth = make_auth(tmp_path, clock)
    value = token(tier="premium")
    first = auth.authenticate(bearer(value))
    assert first == Principal(
        user="alice",
        tier="premium",
        claims=jwt.decode(value, SECRET, ["HS256"], options={"verify_exp": False}),
    )
    assert auth.authenticate(bearer(value)) is first
    clock.now = T0 + 100 + LEEWAY - 0.5  # still accepted by a fresh verification too
    assert auth.authenticate(bearer(value)) is first
    assert auth.decodes == 1
    clock.now = T0 + 100 + LEEWAY  # the verifier refuses it from here on: so does the cache
    assert "expired" in refused(auth, value)
    assert "expired" in refused(auth, value)
    assert auth.decodes == 3 and len(auth.cache) == 0


def test_the_cache_is_bounded_least_recently_used_first(tmp_path: Path, clock: Clock) -> None:
    auth = make_auth(tmp_path, clock, max_entries=2)
    a, b, c = token("a"), token("b"), token("c")
    for value in (a, b, a, c):  # a is used again before c arrives: b is the oldest
        auth.authenticate(bearer(value))
    assert len(auth.cache) == 2 and auth.decodes == 3
    auth.authenticate(bearer(a))
    auth.authenticate(bearer(c))
    assert auth.decodes == 3  # both still remembered
    principal = auth.authenticate(bearer(b))  # evicted: verified again
    assert principal is not None and principal.user == "b"
    assert auth.decodes == 4 and len(auth.cache) == 2


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (token(secret="w" * 40), "signature is invalid"),
        (token(exp=T0 - LEEWAY - 1), "expired"),
        (token(tier="root"), "tier claim must be one of"),
        (token(sub=""), "sub must be a non-empty string"),
        (token(nbf=int(T0 + 3600)), "not valid yet"),
        (token()[:-4], "malformed"),
    ],
)
def test_a_refused_token_is_never_remembered(tmp_path: Path, clock: Clock, value: str, fragment: str) -> None:
    auth = make_auth(tmp_path, clock)
    for _ in range(3):
        assert fragment in refused(auth, value)
    assert auth.decodes == 3 and len(auth.cache) == 0


def test_a_token_not_valid_yet_is_verified_again_once_it_is(tmp_path: Path, clock: Clock) -> None:
    auth = make_auth(tmp_path, clock)
    value = token(nbf=int(T0 + 60))
    assert "not valid yet" in refused(auth, value)
    clock.now = T0 + 60
    assert auth.authenticate(bearer(value)) is not None
    assert auth.decodes == 2 and len(auth.cache) == 1


def test_put_ignores_an_entry_already_past_its_expiry_and_a_huge_token() -> None:
    clock = Clock()
    cache = VerifiedTokens(4, clock=clock)
    cache.put("t", Principal(user="u"), valid_until=T0)
    assert len(cache) == 0 and cache.get("t") is None
    huge = "x" * (MAX_CACHED_TOKEN + 1)
    cache.put(huge, Principal(user="u"), valid_until=T0 + 60)
    assert len(cache) == 0
    cache.put(huge[:MAX_CACHED_TOKEN], Principal(user="u"), valid_until=T0 + 60)
    assert cache.get(huge[:MAX_CACHED_TOKEN]) == Principal(user="u")
    with pytest.raises(ValueError):
        VerifiedTokens(0)
