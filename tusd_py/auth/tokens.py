"""JWT bearer authentication (PyJWT) and token minting.

Verification contract of :class:`JWTAuthenticator`:

* exactly one algorithm is accepted, ``[auth] algorithm`` (never ``none``;
  an HMAC token is never checked against an RSA/EC key or vice versa);
* ``exp`` and ``sub`` are required, ``exp``/``nbf``/``iat`` are checked with
  ``[auth] leeway`` seconds of clock skew;
* ``aud`` and ``iss`` are checked when ``[auth] audience`` / ``issuer`` are
  set (and then required); with no audience configured, ``aud`` is ignored;
* the tier comes from the claim named ``[auth] tier_claim``; a token without
  it is :data:`tusd_py.auth.tiers.DEFAULT_TIER`; an unknown tier is refused.

Keys: HS256/384/512 use the shared secret (:mod:`tusd_py.auth.secret`);
RS256/ES256 use ``public_key_file`` (PEM) or ``jwks_file`` (a JWK Set; the
token's ``kid`` selects the key, a set of one key needs none). Every failure
raises :class:`tusd_py.core.auth_errors.Unauthenticated` (401 with
``WWW-Authenticate: Bearer ... error="invalid_token"``) with a message that
says what was wrong.

A verified token's principal is remembered until its ``exp`` (plus leeway)
in a bounded LRU keyed by the raw token (:mod:`tusd_py.auth.tokencache`):
repeated requests with one token skip re-verification. That is safe because
tokens cannot be revoked before ``exp`` and every other check depends only on
the token and the fixed config; failures are never cached.

PyJWT (and with it ``cryptography``, ~10 MiB of RSS) is imported by the
functions that use it, not with this module: a ``--no-auth`` server, which
still imports :data:`HMAC_ALGORITHMS` from here, never loads it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tusd_py.auth.secret import resolve_secret
from tusd_py.auth.tiers import DEFAULT_TIER, TIERS
from tusd_py.auth.tokencache import VerifiedTokens
from tusd_py.core import auth_errors
from tusd_py.core.config import Config, ConfigError
from tusd_py.core.models import Principal

if TYPE_CHECKING:
    import jwt

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
#: Longest accepted ``sub`` (it becomes the owner id of uploads).
MAX_SUBJECT = 256


def _invalid(message: str) -> auth_errors.Unauthenticated:
    description = message.replace("\\", "").replace('"', "'")
    return auth_errors.Unauthenticated(
        message,
        headers={
            "WWW-Authenticate": f'Bearer realm="tusd-py", error="invalid_token", '
            f'error_description="{description}"'
        },
    )


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, None if absent.

    Raises :class:`auth_errors.Unauthenticated` for another scheme or an empty token.
    """
    value = headers.get("Authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise _invalid("Authorization must use the Bearer scheme")
    token = token.strip()
    if not token:
        raise _invalid("the bearer token is empty")
    return token


class JWTAuthenticator:
    """Verifies bearer JWTs against one pinned algorithm and key (see module doc)."""

    def __init__(
        self,
        config: Config,
        key: Any = None,
        jwks: jwt.PyJWKSet | None = None,
        cache: VerifiedTokens | None = None,
    ) -> None:
        #: Verified tokens until their expiry (see module doc).
        self.cache = VerifiedTokens() if cache is None else cache
        self.algorithm = config.auth.algorithm
        self.audience = config.auth.audience or None
        self.issuer = config.auth.issuer or None
        self.leeway = config.auth.leeway
        self.tier_claim = config.auth.tier_claim
        self._key = key
        self._jwks = jwks
        required = ["exp", "sub"]
        if self.audience:
            required.append("aud")
        if self.issuer:
            required.append("iss")
        self._options: Any = {"require": required, "verify_aud": self.audience is not None}

    @classmethod
    def from_config(cls, config: Config) -> JWTAuthenticator:
        """Load the verification key named by ``config``; raises :class:`ConfigError`."""
        import jwt

        auth = config.auth
        if auth.algorithm in HMAC_ALGORITHMS:
            return cls(config, key=resolve_secret(config))
        if auth.jwks_file:
            try:
                jwks = jwt.PyJWKSet.from_json(Path(auth.jwks_file).read_text())
            except (OSError, ValueError, jwt.PyJWTError) as exc:
                raise ConfigError("auth.jwks_file", f"cannot load {auth.jwks_file}: {exc}") from None
            return cls(config, jwks=jwks)
        if auth.public_key_file:
            try:
                pem = Path(auth.public_key_file).read_bytes()
                key = jwt.get_algorithm_by_name(auth.algorithm).prepare_key(pem)
            except (OSError, ValueError, TypeError, jwt.PyJWTError) as exc:
                raise ConfigError(
                    "auth.public_key_file", f"cannot load {auth.public_key_file}: {exc}"
                ) from None
            return cls(config, key=key)
        raise ConfigError(
            "auth.public_key_file",
            f"{auth.algorithm} needs auth.public_key_file or auth.jwks_file",
        )

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        token = bearer_token(headers)
        if token is None:
            return None
        cached = self.cache.get(token)
        if cached is not None:
            return cached
        claims = self.decode(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT:
            raise _invalid(f"the token's sub must be a non-empty string of at most {MAX_SUBJECT} characters")
        tier = claims.get(self.tier_claim, DEFAULT_TIER)
        if tier not in TIERS:
            raise _invalid(f"the token's {self.tier_claim} claim must be one of {', '.join(TIERS)}")
        principal = Principal(user=subject, tier=str(tier), claims=claims)
        # decode() required exp and checked int(exp) works; PyJWT refuses the
        # token once int(exp) <= now - leeway, so it may be remembered until then.
        self.cache.put(token, principal, int(claims["exp"]) + self.leeway)
        return principal

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims of ``token``; raises :class:`auth_errors.Unauthenticated`."""
        import jwt

        try:
            key = self._key if self._jwks is None else self._jwk_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                options=self._options,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("the token has expired") from None
        except jwt.InvalidAlgorithmError:
            raise _invalid(
                f"the token's algorithm is not allowed; this server accepts {self.algorithm}"
            ) from None
        except jwt.InvalidSignatureError:
            raise _invalid("the token's signature is invalid") from None
        except jwt.InvalidAudienceError:
            raise _invalid("the token's audience (aud) is not accepted by this server") from None
        except jwt.InvalidIssuerError:
            raise _invalid("the token's issuer (iss) is not accepted by this server") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"the token lacks the required {exc.claim!r} claim") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("the token is not valid yet (nbf/iat in the future)") from None
        except jwt.DecodeError:
            raise _invalid("the token is malformed") from None
        except jwt.PyJWTError as exc:
            raise _invalid(f"the token is invalid: {exc}") from None
        return claims

    def _jwk_for(self, token: str) -> Any:
        import jwt

        assert self._jwks is not None
        kid = jwt.get_unverified_header(token).get("kid")
        keys = list(self._jwks)
        if kid is None:
            if len(keys) == 1:
                return keys[0]
            raise _invalid("the token has no kid and the key set holds several keys")
        try:
            return self._jwks[str(kid)]
        except KeyError:
            raise _invalid(f"no key with kid {str(kid)[:64]!r} in the key set") from None


def mint_token(
    config: Config,
    *,
    user: str,
    tier: str = DEFAULT_TIER,
    ttl: float = 86400.0,
    now: float | None = None,
) -> str:
    """A token for ``user`` that a server with ``config`` accepts.

    Only HMAC algorithms can mint (RS256/ES256 tokens come from the identity
    provider holding the private key); raises :class:`ConfigError` otherwise
    and ``ValueError`` for an unknown tier, an empty user or a non-positive ttl.
    """
    import jwt

    if config.auth.algorithm not in HMAC_ALGORITHMS:
        raise ConfigError(
            "auth.algorithm",
            f"tokens can only be minted with an HMAC algorithm, not {config.auth.algorithm}; "
            "issue them from the holder of the private key",
        )
    if not user or len(user) > MAX_SUBJECT:
        raise ValueError(f"user must be 1..{MAX_SUBJECT} characters")
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {', '.join(TIERS)}")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "sub": user,
        config.auth.tier_claim: tier,
        "iat": issued,
        "exp": issued + math.ceil(ttl),
    }
    if config.auth.audience:
        claims["aud"] = config.auth.audience
    if config.auth.issuer:
        claims["iss"] = config.auth.issuer
    return jwt.encode(claims, resolve_secret(config), algorithm=config.auth.algorithm)
