"""Flat encoding of :class:`UploadInfo` for row- or hash-based stores."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tusd_py.core.models import ConcatKind, UploadInfo, UploadState

#: Column order of the flat form (SQLite columns, Redis hash fields).
FIELDS = (
    "id",
    "owner",
    "length",
    "offset",
    "metadata_raw",
    "concat",
    "concat_raw",
    "partials",
    "storage",
    "storage_meta",
    "state",
    "visibility",
    "mime",
    "created_at",
    "updated_at",
    "expires_at",
    "checksum",
    "tier",
)


def encode_value(name: str, value: Any) -> Any:
    """One field to its flat form (JSON for collections, str for enums)."""
    if name == "partials":
        return json.dumps(list(value))
    if name == "storage_meta":
        return json.dumps(dict(value), sort_keys=True)
    if name in ("concat", "state"):
        return value.value if hasattr(value, "value") else str(value)
    return value


def to_row(info: UploadInfo) -> dict[str, Any]:
    """The flat form of ``info``."""
    return {name: encode_value(name, getattr(info, name)) for name in FIELDS}


def _opt_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _opt_str(row: Mapping[str, Any], name: str, names: Any) -> str | None:
    """A text field that records written by older versions may lack (``names``: the row's keys)."""
    value = row[name] if name in names else None
    return None if value in (None, "") else str(value)


def _json(raw: Any, empty: str) -> Any:
    """A JSON column; the common empty collection is decoded without the parser."""
    if not raw or raw == empty:
        return [] if empty == "[]" else {}
    return json.loads(raw)


def from_row(row: Mapping[str, Any]) -> UploadInfo:
    """Rebuild an :class:`UploadInfo` from its flat form."""
    names = row.keys()
    return UploadInfo(
        id=str(row["id"]),
        owner=str(row["owner"]),
        length=_opt_int(row["length"]),
        offset=int(row["offset"]),
        metadata_raw=str(row["metadata_raw"] or ""),
        concat=ConcatKind(row["concat"]),
        concat_raw=str(row["concat_raw"] or ""),
        partials=tuple(_json(row["partials"], "[]")),
        storage=str(row["storage"]),
        storage_meta=_json(row["storage_meta"], "{}"),
        state=UploadState(row["state"]),
        visibility=str(row["visibility"]),
        mime=(str(row["mime"]) if row["mime"] not in (None, "") else None),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        expires_at=_opt_float(row["expires_at"]),
        checksum=_opt_str(row, "checksum", names),
        tier=_opt_str(row, "tier", names) or "basic",
    )
