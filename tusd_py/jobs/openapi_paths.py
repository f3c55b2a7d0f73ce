"""OpenAPI paths and schemas of the job routes (merged by :mod:`tusd_py.rest.openapi`)."""

from __future__ import annotations

from typing import Any

from tusd_py.rest.openapi_schemas import JSON
from tusd_py.rest.openapi_schemas import error_response as _error
from tusd_py.rest.openapi_schemas import json_response as _json
from tusd_py.rest.openapi_schemas import ref as _ref

_ID = {"in": "path", "required": True, "schema": {"type": "string"}}


_PREFLIGHT = {
    "tags": ["jobs"],
    "summary": "CORS preflight",
    "security": [],
    "responses": {"204": {"description": "allowed methods"}},
}


def job_schemas() -> dict[str, Any]:
    """``Job``, ``JobAccepted`` and ``Rows``."""
    time = {"type": ["string", "null"], "format": "date-time"}
    job_props: dict[str, Any] = {
        "job_id": {"type": "string"},
        "file_id": {"type": "string"},
        "kind": {"enum": ["index", "sha256", "webhook"]},
        "status": {"enum": ["PENDING", "PROCESSING", "COMPLETED", "FAILED"]},
        "attempts": {"type": "integer", "minimum": 0},
        "max_attempts": {"type": "integer", "minimum": 1},
        "error": {
            "type": ["string", "null"],
            "description": "last failure (FAILED: the dead letter's cause)",
        },
        "result": {
            "type": ["object", "null"],
            "description": (
                "index: {format, table, rows, columns [{name, type}], malformed, malformed_lines "
                "[{line, reason}] (first 100)}; sha256: {checksum, sha256, bytes}"
            ),
        },
        "created_at": time,
        "updated_at": time,
        "next_attempt_at": {**time, "description": "when a PENDING retry runs (backoff)"},
    }
    return {
        "Job": {"type": "object", "required": list(job_props), "properties": job_props},
        "JobAccepted": {
            "type": "object",
            "required": ["job_id", "file_id", "kind", "status"],
            "properties": {k: job_props[k] for k in ("job_id", "file_id", "kind", "status")},
        },
        "Rows": {
            "type": "object",
            "required": ["columns", "rows", "next_cursor", "total"],
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": {"type": "object"}},
                "next_cursor": {
                    "type": ["string", "null"],
                    "description": "pass as cursor for the next page",
                },
                "total": {"type": "integer", "minimum": 0},
            },
        },
    }


def job_paths(base_path: str) -> dict[str, Any]:
    """``/process/{file_id}``, ``/jobs/{job_id}`` and ``<base_path>{id}/rows``."""
    return {
        "/process/{file_id}": {
            "parameters": [{**_ID, "name": "file_id"}],
            "post": {
                "tags": ["jobs"],
                "summary": "Queue processing of a complete upload (owner or admin)",
                "requestBody": {
                    "required": False,
                    "content": {
                        JSON: {
                            "schema": {
                                "type": "object",
                                "properties": {"kind": {"enum": ["index", "sha256"], "default": "index"}},
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json(_ref("JobAccepted"), "queued (or the file's active job of that kind)"),
                    "400": _error("malformed body or unknown kind"),
                    "404": _error("unknown or another user's upload"),
                    "409": _error("the upload is not complete yet"),
                    "415": _error("index of an upload that is neither CSV nor NDJSON"),
                },
            },
            "options": _PREFLIGHT,
        },
        "/jobs/{job_id}": {
            "parameters": [{**_ID, "name": "job_id"}],
            "get": {
                "tags": ["jobs"],
                "summary": "A job's state, attempts, error and result",
                "responses": {
                    "200": _json(_ref("Job"), "the job"),
                    "404": _error("unknown or another user's job"),
                },
            },
            "options": _PREFLIGHT,
        },
        base_path + "{id}/rows": {
            "parameters": [
                {**_ID, "name": "id"},
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1},
                },
                {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "get": {
                "tags": ["jobs"],
                "summary": "Rows of an indexed CSV/NDJSON upload, in file order (owner, admin or public)",
                "security": [{"bearer": []}, {}],
                "responses": {
                    "200": _json(_ref("Rows"), "one page"),
                    "400": _error("bad limit or cursor"),
                    "404": _error("unknown, another user's private, or not indexed upload"),
                },
            },
            "options": _PREFLIGHT,
        },
    }
