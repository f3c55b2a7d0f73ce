"""Signed download links: ``GET <base_path>{id}?expires=E&signature=S``.

``S`` is the unpadded base64url HMAC-SHA256 of ``"GET\\n{id}\\n{E}"`` under a
key derived from the server secret (:mod:`tusd_py.auth.secret`) with a fixed
label, so a link can never be replayed as a JWT signature or vice versa.
``E`` is the expiry in Unix seconds. Anyone holding the URL may download the
upload until ``E``; a link whose signature does not match (any part of it
changed) raises :class:`auth_errors.LinkInvalid`, one past ``E`` raises
:class:`auth_errors.LinkExpired` (both 403). The signature is checked before the
expiry, so a tampered ``expires`` is reported as invalid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from tusd_py.auth.secret import resolve_secret
from tusd_py.core import auth_errors
from tusd_py.core.config import Config

EXPIRES_PARAM = "expires"
SIGNATURE_PARAM = "signature"
_LABEL = b"tusd-py signed download link v1"


@dataclass(frozen=True, slots=True)
class SignedLink:
    """The query string of a link and when it stops working (Unix seconds)."""

    query: str
    expires_at: int


class LinkSigner:
    """Signs and verifies download links; ``clock`` returns Unix seconds."""

    def __init__(self, secret: str, ttl: float, clock: Callable[[], float] = time.time) -> None:
        self._key = hmac.new(secret.encode(), _LABEL, hashlib.sha256).digest()
        self.ttl = ttl
        self.clock = clock

    @classmethod
    def from_config(cls, config: Config, clock: Callable[[], float] = time.time) -> LinkSigner:
        """A signer with the server secret and ``[auth] link_ttl``."""
        return cls(resolve_secret(config), config.auth.link_ttl, clock)

    def _signature(self, upload_id: str, expires: int) -> str:
        digest = hmac.new(self._key, f"GET\n{upload_id}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, upload_id: str, ttl: float | None = None) -> SignedLink:
        """A link valid for ``ttl`` seconds (at most, and by default, the configured ttl)."""
        lifetime = self.ttl if ttl is None else min(ttl, self.ttl)
        expires = math.ceil(self.clock() + lifetime)
        signature = self._signature(upload_id, expires)
        return SignedLink(f"{EXPIRES_PARAM}={expires}&{SIGNATURE_PARAM}={signature}", expires)

    def verify(self, upload_id: str, expires: str | None, signature: str | None) -> None:
        """Accept a link or raise :class:`auth_errors.LinkInvalid` / :class:`auth_errors.LinkExpired`."""
        if not expires or not signature or not expires.isdigit() or len(expires) > 15:
            raise auth_errors.LinkInvalid("the download link lacks a valid expires or signature parameter")
        expected = self._signature(upload_id, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise auth_errors.LinkInvalid()
        if int(expires) < self.clock():
            raise auth_errors.LinkExpired()
