"""A server verifying RS256 tokens with a public key file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tornado.httpclient import AsyncHTTPClient

from tests.tusclient import Tus

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def config_overrides(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "issuer.pub.pem"
    path.write_bytes(
        KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return {
        "auth.enabled": True,
        "auth.algorithm": "RS256",
        "auth.public_key_file": str(path),
        "auth.issuer": "https://idp.example",
    }


def token(key: Any, **claims: Any) -> str:
    base = {"sub": "erin", "tier": "premium", "iss": "https://idp.example", "exp": int(time.time()) + 60}
    base.update(claims)
    return jwt.encode(base, key, algorithm="RS256")


@pytest.mark.gen_test
async def test_rs256_tokens_from_the_key_file(http_client: AsyncHTTPClient, base_url: str) -> None:
    tus = Tus(http_client, base_url)
    good = {"Authorization": f"Bearer {token(KEY)}"}
    url = await tus.create_url(4, headers=good)
    assert (await tus.patch(url, 0, b"data", good)).code == 204
    assert (await tus.get(url, good)).body == b"data"
    forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        token(forged_key),
        token(KEY, iss="https://evil.example"),
        token(KEY, exp=int(time.time()) - 300),
    ):
        res = await tus.head(url, {"Authorization": f"Bearer {bad}"})
        assert res.code == 401 and res.headers["WWW-Authenticate"].startswith("Bearer")
