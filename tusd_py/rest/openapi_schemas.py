"""The parts of the OpenAPI document that its paths share: the component
schemas (uploads, status, listing, links, errors, ...) and the small builders
of references, JSON responses and header parameters.

:mod:`tusd_py.rest.openapi` assembles the paths from these; nothing here
knows a route.
"""

from __future__ import annotations

from typing import Any

JSON = "application/json"


def ref(name: str) -> dict[str, str]:
    """A reference to ``#/components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response whose JSON body follows ``schema``."""
    return {"description": description, "content": {JSON: {"schema": schema}}}


def error_response(description: str) -> dict[str, Any]:
    """A response carrying the Error document."""
    return json_response(ref("Error"), description)


def header(name: str, description: str, *, required: bool = False, schema: Any = None) -> dict[str, Any]:
    """A header parameter (a string unless ``schema`` says otherwise)."""
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


TUS = header("Tus-Resumable", "Protocol version; must be 1.0.0.", required=True, schema={"const": "1.0.0"})
UINT = {"type": "integer", "minimum": 0}
ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}
FILE_ID = {**ID, "name": "file_id"}


def schemas() -> dict[str, Any]:
    """``components.schemas`` of the tus, REST and health routes."""
    nullable_str = {"type": ["string", "null"]}
    time = {"type": ["string", "null"], "format": "date-time"}
    status_props = {
        "file_id": {"type": "string"},
        "filename": nullable_str,
        "size": {"type": ["integer", "null"], "minimum": 0, "description": "null while deferred"},
        "offset": UINT,
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
        "jobs": {"type": "array", "items": ref("Job")},
        "upload_url": {"type": "string"},
        "status_url": {"type": "string"},
    }
    index_props = {
        "file_id": {"type": "string"},
        "status_url": {"type": "string"},
        "upload_url": {"type": "string", "description": "tus URL to resume or inspect the upload"},
        "size": {"type": ["integer", "null"], "minimum": 0},
        "storage": {"type": "string"},
        "offset": UINT,
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
            "properties": {"error": ref("Error/properties/error"), **index_props},
        },
        "Listing": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": ref("Status")},
                "next_cursor": {**nullable_str, "description": "pass as cursor for the next page"},
            },
        },
    }
