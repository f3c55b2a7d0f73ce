"""The OpenAPI 3.1 document served at ``/openapi.json``.

It covers the tus routes (``<base_path>`` and ``<base_path>{id}``), the REST
routes of SPEC §6 (``/index``, ``/index-status/{file_id}``, listing), health
and the document itself. A test validates it with openapi-spec-validator and
checks that every route and method of :func:`handlers.app.routes` is listed.
"""

from __future__ import annotations

from typing import Any

from tusd_py import __version__
from tusd_py.core.config import Config
from tusd_py.events.live.openapi_paths import live_paths, with_event_stream
from tusd_py.jobs.openapi_paths import job_paths, job_schemas

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _header(name: str, description: str, *, required: bool = False, schema: Any = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_TUS = _header("Tus-Resumable", "Protocol version; must be 1.0.0.", required=True, schema={"const": "1.0.0"})
_UINT = {"type": "integer", "minimum": 0}
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}
_FILE_ID = {**_ID, "name": "file_id"}


def _schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    time = {"type": ["string", "null"], "format": "date-time"}
    status_props = {
        "file_id": {"type": "string"},
        "filename": nullable_str,
        "size": {"type": ["integer", "null"], "minimum": 0, "description": "null while deferred"},
        "offset": _UINT,
        "percent": {"type": ["number", "null"], "minimum": 0, "maximum": 100},
        "state": {"enum": ["uploading", "complete", "processing", "ready", "failed", "expired"]},
        "storage": {"type": "string", "examples": ["disk", "s3"]},
        "visibility": {"enum": ["public", "private"]},
        "created_at": time,
        "updated_at": time,
        "expires_at": {
            **time,
            "description": "null once complete (a partial upload keeps it until its final is assembled)",
        },
        "mime": {**nullable_str, "description": "type detected from the first bytes"},
        "checksum": {
            **nullable_str,
            "pattern": "^(sha1|sha256|sha512|md5|crc32):[0-9a-f]+$",
            "examples": ["sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
            "description": (
                "digest of the whole upload, '<algorithm>:<hex>', when every PATCH carried "
                "Upload-Checksum with that algorithm and one server process received them all; "
                "null otherwise (no or mixed checksums, resumed on another instance, concatenated "
                "final, not complete yet)"
            ),
        },
        "jobs": {"type": "array", "items": _ref("Job")},
        "upload_url": {"type": "string"},
        "status_url": {"type": "string"},
    }
    index_props = {
        "file_id": {"type": "string"},
        "status_url": {"type": "string"},
        "upload_url": {"type": "string", "description": "tus URL to resume or inspect the upload"},
        "size": {"type": ["integer", "null"], "minimum": 0},
        "storage": {"type": "string"},
        "offset": _UINT,
        "state": {"type": "string"},
        "filename": nullable_str,
        "mime": nullable_str,
    }
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
        "Status": {"type": "object", "required": list(status_props), "properties": status_props},
        "IndexResult": {
            "type": "object",
            "required": ["file_id", "status_url", "upload_url", "size", "storage"],
            "properties": index_props,
        },
        "IndexIncomplete": {
            "type": "object",
            "required": ["error", "file_id", "upload_url", "offset"],
            "properties": {"error": _ref("Error/properties/error"), **index_props},
        },
        "Listing": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref("Status")},
                "next_cursor": {**nullable_str, "description": "pass as cursor for the next page"},
            },
        },
    }


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
                _TUS,
                _header("Upload-Length", "Total size in bytes.", schema=_UINT),
                _header("Upload-Defer-Length", "1 when the size is not known yet.", schema={"const": "1"}),
                _header("Upload-Metadata", "Comma-separated `key base64(value)` pairs."),
                _header("Upload-Concat", "`partial` or `final;<url> <url>...`."),
            ],
            "requestBody": {
                "required": False,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
            },
            "responses": {
                "201": {"description": "created; Location is the upload URL"},
                "400": _error("invalid header"),
                "401": _error("missing or invalid token"),
                "412": _error("unsupported Tus-Resumable"),
                "413": _error("larger than allowed"),
                "415": _error("wrong Content-Type or file type refused"),
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
                "200": _json(_ref("Listing"), "one page"),
                "400": _error("invalid parameter or cursor"),
                "401": _error("missing or invalid token"),
            },
        },
    }


def _resource() -> dict[str, Any]:
    offset = _header("Upload-Offset", "Offset the body starts at.", required=True, schema=_UINT)
    return {
        "parameters": [_ID],
        "head": {
            "tags": ["tus"],
            "summary": "Offset, length and metadata of an upload",
            "parameters": [_TUS],
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
                _TUS,
                offset,
                _header("Upload-Length", "Declares a deferred length.", schema=_UINT),
                _header("Upload-Checksum", "`<algorithm> <base64 digest>` of the body."),
            ],
            "requestBody": {
                "required": True,
                "content": {"application/offset+octet-stream": {"schema": {"type": "string"}}},
            },
            "responses": {
                "204": {"description": "stored; Upload-Offset is the new offset"},
                "409": _error("offset mismatch"),
                "413": _error("beyond the length or limit"),
                "415": _error("wrong Content-Type or file type refused"),
                "423": _error("locked by another request"),
                "460": _error("checksum mismatch"),
            },
        },
        "delete": {
            "tags": ["tus"],
            "summary": "Terminate an upload and free its bytes",
            "parameters": [_TUS],
            "responses": {"204": {"description": "deleted"}, "404": _error("unknown upload")},
        },
        "get": {
            "tags": ["rest"],
            "summary": "Download a complete upload (Range, ETag; S3 uploads may redirect)",
            "responses": {
                "200": {"description": "the bytes", "content": {"application/octet-stream": {}}},
                "206": {"description": "a byte range"},
                "302": {"description": "presigned URL"},
                "304": {"description": "not modified"},
                "404": _error("unknown upload"),
                "409": _error("not complete yet"),
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
                _header(
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
                _header(
                    "Idempotency-Key",
                    "A retry with the same key returns the same upload. The key is bound to the "
                    "request head (method, path, visibility, media type without parameters, "
                    "Content-Length, Transfer-Encoding, X-Filename, Upload-Metadata): the same key "
                    "with another head is refused with 422 ERR_IDEMPOTENCY_KEY_REUSED.",
                ),
                _header("X-Filename", "File name of a raw body (percent-encoded UTF-8)."),
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
                "201": _json(_ref("IndexResult"), "stored (or replayed for the same Idempotency-Key)"),
                "400": _error("malformed body or header"),
                "401": _error("missing or invalid token"),
                "409": _json(_ref("IndexIncomplete"), "the keyed upload broke off; finish it with tus"),
                "413": _error("larger than the caller's limit"),
                "415": _error("wrong Content-Type or file type refused (names the detected type)"),
                "422": _error("Idempotency-Key already used for a different request; nothing kept"),
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
        "parameters": [_FILE_ID],
        "get": {
            "tags": ["rest"],
            "summary": "Live status of an upload",
            "responses": {
                "200": _json(_ref("Status"), "status"),
                "401": _error("missing or invalid token"),
                "404": _error("unknown or another user's upload"),
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
        "parameters": [_ID],
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
                "200": _json(
                    {
                        "type": "object",
                        "required": ["url", "expires_at"],
                        "properties": {"url": {"type": "string"}, "expires_at": {"type": "string"}},
                    },
                    "the link",
                ),
                "400": _error("malformed JSON body"),
                "401": _error("missing or invalid token"),
                "404": _error("unknown or another user's upload"),
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
        "parameters": [_ID],
        "get": {
            "tags": ["rest"],
            "summary": "Visibility of an upload",
            "responses": {
                "200": _json(body, "current visibility"),
                "404": _error("unknown or another user's upload"),
            },
        },
        "patch": {
            "tags": ["rest"],
            "summary": "Make an upload public (downloads without a token) or private",
            "requestBody": {"required": True, "content": {JSON: {"schema": body}}},
            "responses": {
                "200": _json(body, "new visibility"),
                "400": _error("malformed JSON body"),
                "404": _error("unknown or another user's upload"),
            },
        },
        "options": _preflight("rest"),
    }


def _plain_get(summary: str, tag: str = "ops") -> dict[str, Any]:
    operation = {
        "tags": [tag],
        "summary": summary,
        "security": [],
        "responses": {"200": _json({"type": "object"}, "ok"), "503": _json({"type": "object"}, "not ready")},
    }
    return {"get": operation, "head": {**operation, "summary": summary + " (headers only)"}}


def _with_error_default(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation may also answer any documented error (401, 404, 429, 503, ...) with the
    Error document: a ``default`` response, unless the operation declares its own."""
    for item in paths.values():
        for method, operation in item.items():
            if method in ("get", "head", "post", "patch", "put", "delete", "options"):
                operation["responses"].setdefault(
                    "default", _error("an error: its code and message say which")
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
            "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1 document")},
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
            "schemas": {**_schemas(), **job_schemas()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
