"""Users over HTTP: 401s, ownership (404 for others), visibility and signed links."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import tornado.ioloop
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

from tests.fakes import FakeClock
from tests.tusclient import Tus, metadata
from tusd_py.auth.tokens import mint_token
from tusd_py.cli.server import build_context
from tusd_py.core.config import Config
from tusd_py.ops.context import AppContext

SECRET = "test-secret-" + "x" * 40
AUDIENCE = "tusd-py-tests"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {
        "auth.enabled": True,
        "auth.secret": SECRET,
        "auth.audience": AUDIENCE,
        # these tests create many uploads from one IP: rates are another suite's subject
        "throttle.ip_creations_per_minute": 0,
        "throttle.basic_creations_per_minute": 0,
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctx(io_loop: tornado.ioloop.IOLoop, tus_config: Config, clock: FakeClock) -> Iterator[AppContext]:
    context = io_loop.run_sync(lambda: build_context(tus_config, clock=clock))
    yield context
    io_loop.run_sync(lambda: context.lifecycle.join_tasks(10.0))
    io_loop.run_sync(context.aclose)


def auth(config: Config, user: str, tier: str = "basic") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(config, user=user, tier=tier, ttl=600)}"}


def error_code(res: HTTPResponse) -> str:
    return str(json.loads(res.body)["error"]["code"])


async def complete_upload(tus: Tus, headers: dict[str, str], data: bytes = b"hello", **meta: str) -> str:
    extra = {"Upload-Metadata": metadata(**meta)} if meta else {}
    url = await tus.create_url(len(data), headers={**headers, **extra})
    res = await tus.patch(url, 0, data, headers)
    assert res.code == 204, res.body
    return url


def _unsigned(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def bad_tokens() -> dict[str, str]:
    now = int(time.time())
    good = {"sub": "mallory", "aud": AUDIENCE, "exp": now + 300}
    return {
        "bad signature": jwt.encode(good, "another-secret-" + "y" * 40, algorithm="HS256"),
        "alg none": _unsigned({**good, "tier": "admin"}),
        "expired": jwt.encode({**good, "exp": now - 600}, SECRET, algorithm="HS256"),
        "wrong audience": jwt.encode({**good, "aud": "someone-else"}, SECRET, algorithm="HS256"),
        "no exp": jwt.encode({"sub": "mallory", "aud": AUDIENCE}, SECRET, algorithm="HS256"),
    }


# --- 401 -------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_no_token_is_401_with_www_authenticate(http_client: AsyncHTTPClient, base_url: str) -> None:
    tus = Tus(http_client, base_url)
    res = await tus.create(10)
    assert res.code == 401 and error_code(res) == "ERR_UNAUTHENTICATED"
    assert res.headers["WWW-Authenticate"].startswith("Bearer")
    res = await tus.head(tus.collection + "0" * 32)
    assert res.code == 401 and res.body == b"" and res.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("case", sorted(bad_tokens()))
@pytest.mark.gen_test
async def test_invalid_tokens_are_401(http_client: AsyncHTTPClient, base_url: str, case: str) -> None:
    tus = Tus(http_client, base_url)
    res = await tus.create(10, headers={"Authorization": f"Bearer {bad_tokens()[case]}"})
    assert res.code == 401, (case, res.body)
    assert error_code(res) == "ERR_UNAUTHENTICATED"
    challenge = res.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer") and 'error="invalid_token"' in challenge


@pytest.mark.gen_test
async def test_minted_token_is_accepted(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    tus = Tus(http_client, base_url)
    url = await complete_upload(tus, auth(tus_config, "alice"))
    res = await tus.head(url, auth(tus_config, "alice"))
    assert res.code == 200 and res.headers["Upload-Offset"] == "5"


# --- ownership -----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_other_user_gets_404_on_every_route(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    tus = Tus(http_client, base_url)
    alice, bob = auth(tus_config, "alice"), auth(tus_config, "bob")
    url = await tus.create_url(10, headers=alice)
    assert (await tus.patch(url, 0, b"12345", alice)).code == 204
    done = await complete_upload(tus, alice)
    for res in [
        await tus.head(url, bob),
        await tus.patch(url, 5, b"67890", bob),
        await tus.delete(url, bob),
        await tus.get(done, bob),
        await tus.request("POST", done + "/link", bob, b"", tus=False),
        await tus.request("GET", done + "/visibility", bob, tus=False),
        await tus.request("PATCH", done + "/visibility", bob, b'{"visibility": "public"}', tus=False),
    ]:
        assert res.code == 404, (res.effective_url, res.code, res.body)
    # nothing changed for the owner
    head = await tus.head(url, alice)
    assert head.code == 200 and head.headers["Upload-Offset"] == "5"
    assert (await tus.get(done, alice)).body == b"hello"
    # an admin sees everything
    admin = auth(tus_config, "root", "admin")
    assert (await tus.head(url, admin)).code == 200
    assert (await tus.get(done, admin)).body == b"hello"
    assert (await tus.delete(url, admin)).code == 204


@pytest.mark.gen_test
async def test_concatenation_only_of_own_partials(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    tus = Tus(http_client, base_url)
    alice, bob = auth(tus_config, "alice"), auth(tus_config, "bob")
    partials = []
    for data in (b"abc", b"def"):
        url = await tus.create_url(len(data), headers={**alice, "Upload-Concat": "partial"})
        assert (await tus.patch(url, 0, data, alice)).code == 204
        partials.append(url)
    final = {"Upload-Concat": "final;" + " ".join(partials)}
    res = await tus.request("POST", tus.collection, {**bob, **final})
    assert res.code == 404, res.body
    bob_partial = await tus.create_url(3, headers={**bob, "Upload-Concat": "partial"})
    res = await tus.request(
        "POST", tus.collection, {**bob, "Upload-Concat": f"final;{partials[0]} {bob_partial}"}
    )
    assert res.code == 404
    res = await tus.request("POST", tus.collection, {**alice, **final})
    assert res.code == 201
    assert (await tus.get(res.headers["Location"], alice)).body == b"abcdef"


# --- visibility and links --------------------------------------------------------------


@pytest.mark.gen_test
async def test_private_download_needs_owner_token_or_link(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config, clock: FakeClock
) -> None:
    tus = Tus(http_client, base_url)
    alice = auth(tus_config, "alice")
    url = await complete_upload(tus, alice)
    res = await tus.get(url)
    assert res.code == 401 and res.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await tus.get(url, auth(tus_config, "bob"))).code == 404
    assert (await tus.get(url, alice)).body == b"hello"
    # unknown ids look the same as private ones to anonymous callers
    assert (await tus.get(tus.collection + "f" * 32)).code == 401

    res = await tus.request("POST", url + "/link", alice, b"", tus=False)
    assert res.code == 200
    link = json.loads(res.body)
    assert link["url"].startswith(url + "?") and link["expires_at"].endswith("Z")
    got = await tus.get(link["url"])
    assert got.code == 200 and got.body == b"hello"
    # a link works even next to someone else's token
    assert (await tus.get(link["url"], auth(tus_config, "bob"))).body == b"hello"

    tampered = link["url"].replace("expires=", "expires=9")
    res = await tus.get(tampered)
    assert res.code == 403 and error_code(res) == "ERR_LINK_INVALID"
    other = await complete_upload(tus, alice, b"other")
    res = await tus.get(other + "?" + link["url"].split("?", 1)[1])
    assert res.code == 403 and error_code(res) == "ERR_LINK_INVALID"

    clock.advance(tus_config.auth.link_ttl + 1)
    res = await tus.get(link["url"])
    assert res.code == 403 and error_code(res) == "ERR_LINK_EXPIRED"


@pytest.mark.gen_test
async def test_link_ttl_can_be_shortened(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    tus = Tus(http_client, base_url)
    alice = auth(tus_config, "alice")
    url = await complete_upload(tus, alice)
    for body, code in [(b'{"ttl": 30}', 200), (b'{"ttl": -1}', 400), (b"[1]", 400), (b"{nope", 400)]:
        res = await tus.request("POST", url + "/link", alice, body, tus=False)
        assert res.code == code, (body, res.body)
    assert (await tus.request("POST", url + "/link", {}, b"", tus=False)).code == 401


@pytest.mark.gen_test
async def test_public_upload_downloads_without_token(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    tus = Tus(http_client, base_url)
    alice = auth(tus_config, "alice")
    url = await complete_upload(tus, alice, b"public!", visibility="public")
    got = await tus.get(url)
    assert got.code == 200 and got.body == b"public!"
    assert (await tus.get(url, auth(tus_config, "bob"))).body == b"public!"
    # still only the owner may change it
    assert (await tus.head(url, auth(tus_config, "bob"))).code == 404
    assert (await tus.delete(url, auth(tus_config, "bob"))).code == 404


@pytest.mark.gen_test
async def test_owner_changes_visibility(
    http_client: AsyncHTTPClient, base_url: str, tus_config: Config
) -> None:
    tus = Tus(http_client, base_url)
    alice = auth(tus_config, "alice")
    url = await complete_upload(tus, alice)
    res = await tus.request("GET", url + "/visibility", alice, tus=False)
    assert json.loads(res.body)["visibility"] == "private"
    res = await tus.request("PATCH", url + "/visibility", alice, b'{"visibility": "public"}', tus=False)
    assert res.code == 200 and json.loads(res.body) == {"id": url.rsplit("/", 1)[1], "visibility": "public"}
    assert (await tus.get(url)).body == b"hello"
    res = await tus.request("PATCH", url + "/visibility", alice, b'{"visibility": "private"}', tus=False)
    assert res.code == 200
    assert (await tus.get(url)).code == 401
    for body in (b'{"visibility": "secret"}', b"{}", b"null"):
        res = await tus.request("PATCH", url + "/visibility", alice, body, tus=False)
        assert res.code == 400 and error_code(res) == "ERR_INVALID_BODY"
    res = await tus.request("PATCH", url + "/visibility", alice, b"x" * 20000, tus=False)
    assert res.code == 400
    res = await tus.create(5, headers={**alice, "Upload-Metadata": metadata(visibility="everyone")})
    assert res.code == 400
