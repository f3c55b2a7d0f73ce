"""/openapi.json: a valid OpenAPI 3.1 document listing every route and method."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openapi_spec_validator import validate
from tornado.httpclient import AsyncHTTPClient

from handlers.app import routes
from tusd_py.core.config import load_config
from tusd_py.ops.context import AppContext
from tusd_py.rest.openapi import openapi_document

SAMPLE_ID = "0123456789abcdef0123456789abcdef"


def concrete(template: str) -> str:
    """An OpenAPI path template with its parameters filled in."""
    return re.sub(r"\{[^}]+\}", SAMPLE_ID, template)


def assert_routes_documented(ctx: AppContext, doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    for pattern, handler, _ in routes(ctx):
        documented = [p for p in paths if re.fullmatch(pattern, concrete(p))]
        assert documented, f"route {pattern} ({handler.__name__}) is not in /openapi.json"
        methods = {m.lower() for m in handler.SUPPORTED_METHODS}
        missing = methods - set(paths[documented[0]])
        assert not missing, f"{documented[0]}: methods {sorted(missing)} of {handler.__name__} undocumented"
    for path in paths:
        assert any(re.fullmatch(pattern, concrete(path)) for pattern, _, _ in routes(ctx)), (
            f"{path} is documented but not routed"
        )


@pytest.mark.gen_test
async def test_served_document_is_valid_openapi_31(http_client: AsyncHTTPClient, base_url: str) -> None:
    res = await http_client.fetch(f"{base_url}/openapi.json")
    assert res.code == 200 and res.headers["Content-Type"].startswith("application/json")
    doc = json.loads(res.body)
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_every_route_and_method_is_documented(ctx: AppContext) -> None:
    doc = openapi_document(ctx.config)
    assert "/files/" in doc["paths"]
    assert_routes_documented(ctx, doc)


class TestOtherBasePath:
    @pytest.fixture
    def config_overrides(self) -> dict[str, Any]:
        return {"server.base_path": "/uploads/"}

    def test_document_follows_the_configured_base_path(self, ctx: AppContext) -> None:
        doc = openapi_document(ctx.config)
        assert "/uploads/" in doc["paths"] and "/uploads/{id}" in doc["paths"]
        assert "/files/" not in doc["paths"]
        validate(doc)
        assert_routes_documented(ctx, doc)


def test_validator_rejects_a_broken_document() -> None:
    """The validator really checks (guards against a no-op validation)."""
    doc = openapi_document(load_config(environ={}))
    doc["paths"]["/index"]["post"]["responses"] = {"201": {"content": {}}}
    with pytest.raises(Exception, match="description"):
        validate(doc)
