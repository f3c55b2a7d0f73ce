"""The OpenAPI 3.1 document served at ``/openapi.json``.

It covers the tus routes (``<base_path>`` and ``<base_path>{id}``), the REST
routes of SPEC §6 (``/index``, ``/index-status/{file_id}``, listing), health
and the document itself. A test validates it with openapi-spec-validator and
checks that every route and method of :func:`handlers.app.routes` is listed.
This module holds the paths; the component schemas and the builders the paths
share are in :mod:`tusd_py.rest.openapi_schemas`.
"""

from __future__ import annotations

from typing import Any

from tusd_py import __version__
from tusd_py.core.config import Config
from tusd_py.events.live.openapi_paths import live_paths, with_event_stream
from tusd_py.jobs.openapi_paths import job_paths, job_schemas
from tusd_py.rest.openapi_schemas import (
    FILE_ID,
    ID,
    JSON,
    TUS,
    UINT,
    error_response,
    header,
    json_response,
    ref,
    schemas,
)


def _collection(base_path: str) -> dict[str, Any]:
    return {
        "options": {
            "tags": ["tus"],
            "summary": "tus discovery (Tus-Version, Tus-Extension, Tus-Max-Size) or CORS preflight",
            "security": [],
            "responses": {"204": {"description": "capabilities in headers"}},
        },
        "post": {
            "tags": ["tus"],
            "summary": "Create an upload (creation, creation-with-upload, defer-length, concatenation)",
            "parameters": [
                TUS,
                header("Upload-Length", "Total size in bytes.", schema=UINT),
                header("Upload-Defer-Length", "1 when the size is not known yet.", schema={"const": "1"}),
                header("Upload-Metadata", "Comma-separated `key base64(value)` pairs."),
                header("Upload-Concat", "`partial` or `final;<url> <url>...`."),
            ],
            "requestBody": {
                "required": False,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
            },
            "responses": {
                "201": {"description": "created; Location is the upload URL"},
                "400": error_response("invalid header"),
                "401": error_response("missing or invalid token"),
                "412": error_response("unsupported Tus-Resumable"),
                "413": error_response("larger than allowed"),
                "415": error_response("wrong Content-Type or file type refused"),
            },
        },
        "get": {
            "tags": ["rest"],
            "summary": "List the caller's uploads (admins: all), oldest first",
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "state", "in": "query", "schema": {"enum": ["uploading", "complete", "expired"]}},
                {"name": "visibility", "in": "query", "schema": {"enum": ["public", "private"]}},
                {
                    "name": "include",
                    "in": "query",
                    "description": (
                        "partial: also list the partial uploads of concatenations (parallel uploads). "
                        "They are hidden by default, expire like unfinished uploads until their final "
                        "upload is assembled, and are deleted once it is."
                    ),
                    "schema": {"enum": ["partial"]},
                },
            ],
            "responses": {
                "200": json_response(ref("Listing"), "one page"),
                "400": error_response("invalid parameter or cursor"),
                "401": error_response("missing or invalid token"),
            },
        },
    }


def _resource() -> dict[str, Any]:
    offset = header("Upload-Offset", "Offset the body starts at.", required=True, schema=UINT)
    return {
        "parameters": [ID],
        "head": {
            "tags": ["tus"],
            "summary": "Offset, length and metadata of an upload",
            "parameters": [TUS],
            "responses": {
                "200": {"description": "Upload-Offset, Upload-Length, Upload-Metadata headers"},
                "404": {"description": "unknown or another user's upload"},
                "410": {"description": "expired"},
            },
        },
        "patch": {
            "tags": ["tus"],
            "summary": "Append bytes at Upload-Offset",
            "parameters": [
                TUS,
                offset,
                header("Upload-Length", "Declares a deferred length.", schema=UINT),
                header("Upload-Checksum", "`<algorithm> <base64 digest>` of the body."),
            ],
            "requestBody": {
                "required": True,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
            },
            "responses": {
                "204": {"description": "stored; Upload-Offset is the new offset"},
                "409": error_response("offset mismatch"),
                "413": error_response("beyond the length or limit"),
                "415": error_response("wrong Content-Type or file type refused"),
                "423": error_response("locked by another request"),
                "460": error_response("checksum mismatch"),
            },
        },
        "delete": {
            "tags": ["tus"],
            "summary": "Terminate an upload and free its bytes",
            "parameters": [TUS],
            "responses": {"204": {"description": "deleted"}, "404": error_response("unknown upload")},
        },
        "get": {
            "tags": ["rest"],
            "summary": "Download a complete upload (Range, ETag; S3 uploads may redirect)",
            "responses": {
                "200": {"description": "the bytes", "content": {"application/octet-stream": {}}},
                "206": {"description": "a byte range"},
                "302": {"description": "presigned URL"},
                "304": {"description": "not modified"},
                "404": error_response("unknown upload"),
                "409": error_response("not complete yet"),
            },
        },
        "options": {
            "tags": ["tus"],
            "summary": "tus discovery or CORS preflight",
            "security": [],
            "responses": {"204": {"description": "capabilities in headers"}},
        },
        "post": {
            "tags": ["tus"],
            "summary": "Method override for clients that can only POST",
            "parameters": [
                header(
                    "X-HTTP-Method-Override",
                    "The real method.",
                    required=True,
                    schema={"enum": ["PATCH", "HEAD", "DELETE", "GET"]},
                )
            ],
            "responses": {"default": {"description": "as the overridden method"}},
        },
    }


def _index() -> dict[str, Any]:
    return {
        "post": {
            "tags": ["rest"],
            "summary": "One-shot upload without tus (streamed into a tus upload)",
            "parameters": [
                header(
                    "Idempotency-Key",
                    "A retry with the same key returns the same upload. The key is bound to the "
                    "request head (method, path, visibility, media type without parameters, "
                    "Content-Length, Transfer-Encoding, X-Filename, Upload-Metadata): the same key "
                    "with another head is refused with 422 ERR_IDEMPOTENCY_KEY_REUSED.",
                ),
                header("X-Filename", "File name of a raw body (percent-encoded UTF-8)."),
                {"name": "visibility", "in": "query", "schema": {"enum": ["public", "private"]}},
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {
                                "file": {"type": "string", "contentMediaType": "application/octet-stream"}
                            },
                        }
                    },
                    "application/octet-stream": {"schema": {"type": "string"}},
                },
            },
            "responses": {
                "201": json_response(ref("IndexResult"), "stored (or replayed for the same Idempotency-Key)"),
                "400": error_response("malformed body or header"),
                "401": error_response("missing or invalid token"),
                "409": json_response(
                    ref("IndexIncomplete"), "the keyed upload broke off; finish it with tus"
                ),
                "413": error_response("larger than the caller's limit"),
                "415": error_response("wrong Content-Type or file type refused (names the detected type)"),
                "422": error_response("Idempotency-Key already used for a different request; nothing kept"),
            },
        },
        "options": {
            "tags": ["rest"],
            "summary": "CORS preflight",
            "security": [],
            "responses": {"204": {"description": "allowed methods"}},
        },
    }


def _status() -> dict[str, Any]:
    return {
        "parameters": [FILE_ID],
        "get": {
            "tags": ["rest"],
            "summary": "Live status of an upload",
            "responses": {
                "200": json_response(ref("Status"), "status"),
                "401": error_response("missing or invalid token"),
                "404": error_response("unknown or another user's upload"),
            },
        },
        "options": {
            "tags": ["rest"],
            "summary": "CORS preflight",
            "security": [],
            "responses": {"204": {"description": "allowed methods"}},
        },
    }


def _preflight(tag: str) -> dict[str, Any]:
    return {
        "tags": [tag],
        "summary": "CORS preflight",
        "security": [],
        "responses": {"204": {"description": "allowed methods"}},
    }


def _link() -> dict[str, Any]:
    return {
        "parameters": [ID],
        "post": {
            "tags": ["rest"],
            "summary": "A signed download link to a private upload, valid auth.link_ttl seconds",
            "requestBody": {
                "required": False,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "properties": {"ttl": {"type": "number", "exclusiveMinimum": 0}},
                        }
                    }
                },
            },
            "responses": {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["url", "expires_at"],
                        "properties": {"url": {"type": "string"}, "expires_at": {"type": "string"}},
                    },
                    "the link",
                ),
                "400": error_response("malformed JSON body"),
                "401": error_response("missing or invalid token"),
                "404": error_response("unknown or another user's upload"),
            },
        },
        "options": _preflight("rest"),
    }


def _visibility() -> dict[str, Any]:
    body = {
        "type": "object",
        "required": ["visibility"],
        "properties": {"visibility": {"enum": ["public", "private"]}},
    }
    return {
        "parameters": [ID],
        "get": {
            "tags": ["rest"],
            "summary": "Visibility of an upload",
            "responses": {
                "200": json_response(body, "current visibility"),
                "404": error_response("unknown or another user's upload"),
            },
        },
        "patch": {
            "tags": ["rest"],
            "summary": "Make an upload public (downloads without a token) or private",
            "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
            "responses": {
                "200": json_response(body, "new visibility"),
                "400": error_response("malformed JSON body"),
                "404": error_response("unknown or another user's upload"),
            },
        },
        "options": _preflight("rest"),
    }


def _plain_get(summary: str, tag: str = "ops") -> dict[str, Any]:
    operation = {
        "tags": [tag],
        "summary": summary,
        "security": [],
        "responses": {
            "200": json_response({"type": "object"}, "ok"),
            "503": json_response({"type": "object"}, "not ready"),
        },
    }
    return {"get": operation, "head": {**operation, "summary": summary + " (headers only)"}}


def _with_error_default(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation may also answer any documented error (401, 404, 429, 503, ...) with the
    Error document: a ``default`` response, unless the operation declares its own."""
    for item in paths.values():
        for method, operation in item.items():
            if method in ("get", "head", "post", "patch", "put", "delete", "options"):
                operation["responses"].setdefault(
                    "default", error_response("an error: its code and message say which")
                )
    return paths


def openapi_document(config: Config) -> dict[str, Any]:
    """The document for a server running ``config`` (its ``base_path``); every operation
    documents its specific answers plus a ``default`` error response."""
    base = config.server.base_path
    openapi_get = {
        "get": {
            "tags": ["ops"],
            "summary": "This document",
            "security": [],
            "responses": {"200": json_response({"type": "object"}, "OpenAPI 3.1 document")},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tusd-py",
            "version": __version__,
            "description": "Resumable uploads (tus 1.0.0) and a REST API for clients without tus.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "tus", "description": "tus 1.0.0 protocol"},
            {"name": "rest", "description": "REST API (SPEC §6)"},
            {"name": "ops", "description": "health and documentation"},
            {"name": "jobs", "description": "processing after upload (SPEC §7)"},
        ],
        "paths": _with_error_default(
            {
                base: _collection(base),
                base + "{id}": _resource(),
                "/index": _index(),
                "/index-status/{file_id}": with_event_stream(_status()),  # live events
                **live_paths(),  # live events
                base + "{id}/link": _link(),
                base + "{id}/visibility": _visibility(),
                "/healthz": _plain_get("Liveness"),
                "/metrics": {
                    "get": {
                        "tags": ["ops"],
                        "summary": "Prometheus metrics of this process",
                        "security": [],
                        "responses": {
                            "200": {"description": "text exposition format", "content": {"text/plain": {}}}
                        },
                    }
                },
                "/readyz": _plain_get("Readiness of the state store and storages"),
                "/openapi.json": openapi_get,
                **job_paths(base),
            }
        ),
        "components": {
            "schemas": {**schemas(), **job_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
