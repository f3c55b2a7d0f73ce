"""JWT verification edge cases, key sources, the generated secret and minting."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tusd_py.auth.authenticator import NoAuthAuthenticator, build_authenticator
from tusd_py.auth.secret import GENERATED_NAME, resolve_secret
from tusd_py.auth.tokens import JWTAuthenticator, mint_token
from tusd_py.core import auth_errors
from tusd_py.core.config import Config, ConfigError, load_config

SECRET = "s" * 40


def make_config(tmp_path: Path, **auth: Any) -> Config:
    overrides = {"server.data_dir": str(tmp_path / "data"), "auth.enabled": True}
    overrides.update({f"auth.{k}": v for k, v in auth.items()})
    return load_config(environ={}, overrides=overrides)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def hs_token(claims: dict[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    base = {"sub": "alice", "exp": int(time.time()) + 300}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, secret, algorithm=alg)


def assert_401(auth: JWTAuthenticator, headers: dict[str, str], fragment: str) -> None:
    with pytest.raises(auth_errors.Unauthenticated) as info:
        auth.authenticate(headers)
    assert info.value.status == 401
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer ")
    assert fragment in info.value.message


@pytest.fixture
def hs_auth(tmp_path: Path) -> JWTAuthenticator:
    return JWTAuthenticator.from_config(make_config(tmp_path, secret=SECRET))


def test_valid_token_gives_principal_with_tier(hs_auth: JWTAuthenticator) -> None:
    principal = hs_auth.authenticate(bearer(hs_token({"tier": "premium"})))
    assert principal is not None and principal.user == "alice" and principal.tier == "premium"


def test_missing_tier_claim_is_basic(hs_auth: JWTAuthenticator) -> None:
    principal = hs_auth.authenticate(bearer(hs_token({})))
    assert principal is not None and principal.tier == "basic"


def test_no_authorization_header_is_anonymous(hs_auth: JWTAuthenticator) -> None:
    assert hs_auth.authenticate({}) is None


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Authorization": "Basic YWxpY2U6eA=="}, "Bearer scheme"),
        ({"Authorization": "Bearer "}, "empty"),
        ({"Authorization": "Bearer not.a.jwt"}, "malformed"),
    ],
)
def test_malformed_authorization(hs_auth: JWTAuthenticator, headers: dict[str, str], fragment: str) -> None:
    assert_401(hs_auth, headers, fragment)


def test_bad_signature(hs_auth: JWTAuthenticator) -> None:
    assert_401(hs_auth, bearer(hs_token({}, secret="x" * 40)), "signature")


def test_alg_none_is_refused(hs_auth: JWTAuthenticator) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(
        json.dumps({"sub": "alice", "exp": int(time.time()) + 300, "tier": "admin"}).encode()
    ).rstrip(b"=")
    token = f"{header.decode()}.{body.decode()}."
    assert_401(hs_auth, bearer(token), "algorithm")


def test_other_hmac_algorithm_is_refused(hs_auth: JWTAuthenticator) -> None:
    assert_401(hs_auth, bearer(hs_token({}, secret="s" * 64, alg="HS512")), "algorithm")


def test_expired_token(hs_auth: JWTAuthenticator) -> None:
    assert_401(hs_auth, bearer(hs_token({"exp": int(time.time()) - 120})), "expired")


def test_expiry_within_leeway_is_accepted(hs_auth: JWTAuthenticator) -> None:
    assert hs_auth.authenticate(bearer(hs_token({"exp": int(time.time()) - 5}))) is not None


def test_exp_is_required(hs_auth: JWTAuthenticator) -> None:
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    assert_401(hs_auth, bearer(token), "'exp'")


def test_sub_is_required(hs_auth: JWTAuthenticator) -> None:
    assert_401(hs_auth, bearer(hs_token({"sub": None})), "'sub'")


def test_unknown_tier_is_refused(hs_auth: JWTAuthenticator) -> None:
    assert_401(hs_auth, bearer(hs_token({"tier": "platinum"})), "tier")


def test_audience_and_issuer_checked_when_configured(tmp_path: Path) -> None:
    auth = JWTAuthenticator.from_config(
        make_config(tmp_path, secret=SECRET, audience="uploads", issuer="idp")
    )
    assert auth.authenticate(bearer(hs_token({"aud": "uploads", "iss": "idp"}))) is not None
    assert_401(auth, bearer(hs_token({"aud": "other", "iss": "idp"})), "audience")
    assert_401(auth, bearer(hs_token({"iss": "idp"})), "'aud'")
    assert_401(auth, bearer(hs_token({"aud": "uploads", "iss": "evil"})), "issuer")


def test_audience_ignored_when_not_configured(hs_auth: JWTAuthenticator) -> None:
    assert hs_auth.authenticate(bearer(hs_token({"aud": "anything"}))) is not None


def test_custom_tier_claim(tmp_path: Path) -> None:
    auth = JWTAuthenticator.from_config(make_config(tmp_path, secret=SECRET, tier_claim="plan"))
    principal = auth.authenticate(bearer(hs_token({"plan": "admin", "tier": "basic"})))
    assert principal is not None and principal.is_admin


def _rsa_pem(tmp_path: Path) -> tuple[Any, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "rsa.pub.pem"
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, path


def test_rs256_public_key_file(tmp_path: Path) -> None:
    key, path = _rsa_pem(tmp_path)
    auth = JWTAuthenticator.from_config(make_config(tmp_path, algorithm="RS256", public_key_file=str(path)))
    token = jwt.encode({"sub": "bob", "exp": int(time.time()) + 60}, key, algorithm="RS256")
    principal = auth.authenticate(bearer(token))
    assert principal is not None and principal.user == "bob"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"sub": "bob", "exp": int(time.time()) + 60}, other, algorithm="RS256")
    assert_401(auth, bearer(forged), "signature")


def test_rs256_server_refuses_hs256_signed_with_public_key(tmp_path: Path) -> None:
    """Algorithm confusion: the public key used as an HMAC secret must not verify."""
    _, path = _rsa_pem(tmp_path)
    auth = JWTAuthenticator.from_config(make_config(tmp_path, algorithm="RS256", public_key_file=str(path)))
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    assert_401(auth, bearer(header.decode() + ".e30.c2ln"), "algorithm")


def test_es256_jwks_file_selects_key_by_kid(tmp_path: Path) -> None:
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(2)]
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": f"k{i}", "alg": "ES256"}
            for i, k in enumerate(keys)
        ]
    }
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    auth = JWTAuthenticator.from_config(make_config(tmp_path, algorithm="ES256", jwks_file=str(path)))
    claims = {"sub": "carol", "exp": int(time.time()) + 60}
    good = jwt.encode(claims, keys[1], algorithm="ES256", headers={"kid": "k1"})
    principal = auth.authenticate(bearer(good))
    assert principal is not None and principal.user == "carol"
    wrong_kid = jwt.encode(claims, keys[1], algorithm="ES256", headers={"kid": "k0"})
    assert_401(auth, bearer(wrong_kid), "signature")
    assert_401(auth, bearer(jwt.encode(claims, keys[0], algorithm="ES256")), "kid")
    unknown = jwt.encode(claims, keys[0], algorithm="ES256", headers={"kid": "nope"})
    assert_401(auth, bearer(unknown), "kid")


def test_asymmetric_algorithm_needs_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="public_key_file"):
        JWTAuthenticator.from_config(make_config(tmp_path, algorithm="RS256"))
    with pytest.raises(ConfigError, match="cannot load"):
        JWTAuthenticator.from_config(
            make_config(tmp_path, algorithm="RS256", public_key_file=str(tmp_path / "missing.pem"))
        )


def test_short_secret_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        JWTAuthenticator.from_config(make_config(tmp_path, secret="short"))


def test_secret_file_is_used(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    auth = JWTAuthenticator.from_config(make_config(tmp_path, secret_file=str(path)))
    assert auth.authenticate(bearer(hs_token({}))) is not None


def test_generated_secret_is_private_and_stable(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    first = resolve_secret(config)
    path = config.data_dir / GENERATED_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 64 and resolve_secret(config) == first
    assert [p.name for p in config.data_dir.iterdir()] == [GENERATED_NAME]


def test_minted_token_is_accepted(tmp_path: Path) -> None:
    config = make_config(tmp_path, audience="uploads", issuer="tusd-py")
    auth = build_authenticator(config)
    principal = auth.authenticate(bearer(mint_token(config, user="dave", tier="premium", ttl=60)))
    assert principal is not None and (principal.user, principal.tier) == ("dave", "premium")
    expired = mint_token(config, user="dave", ttl=1, now=time.time() - 3600)
    with pytest.raises(auth_errors.Unauthenticated):
        auth.authenticate(bearer(expired))


def test_mint_refuses_bad_input(tmp_path: Path) -> None:
    config = make_config(tmp_path, secret=SECRET)
    with pytest.raises(ValueError, match="tier"):
        mint_token(config, user="x", tier="gold")
    with pytest.raises(ValueError, match="user"):
        mint_token(config, user="")
    _, path = _rsa_pem(tmp_path)
    with pytest.raises(ConfigError, match="HMAC"):
        mint_token(make_config(tmp_path, algorithm="RS256", public_key_file=str(path)), user="x")


def test_auth_disabled_uses_local_admin(tmp_path: Path) -> None:
    config = load_config(environ={}, overrides={"auth.enabled": False, "server.data_dir": str(tmp_path)})
    auth = build_authenticator(config)
    assert isinstance(auth, NoAuthAuthenticator)
    principal = auth.authenticate({})
    assert principal is not None and principal.is_admin
