"""Flat encoding of :class:`UploadInfo` for row- or hash-based stores."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
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


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _json(raw: Any, empty: str) -> Any:
    """A JSON column; the common empty collection is decoded without the parser."""
    if not raw or raw == empty:
        return [] if empty == "[]" else {}
    return json.loads(raw)


# The enums by value, read-only (a plain lookup; calling the enum costs more).
_CONCAT = MappingProxyType({kind.value: kind for kind in ConcatKind})
_STATE = MappingProxyType({state.value: state for state in UploadState})


def from_row(row: Mapping[str, Any]) -> UploadInfo:
    """Rebuild an :class:`UploadInfo` from its flat form (a hash: fields that
    records written by older versions lack read as missing)."""
    return from_values(tuple(row.get(name) for name in FIELDS))


def from_values(values: Sequence[Any]) -> UploadInfo:
    """Rebuild an :class:`UploadInfo` from its flat form's values in
    :data:`FIELDS` order (a row of ``SELECT`` listing them; positions, not
    names: every record read goes through here)."""
    (id_, owner, length, offset, metadata_raw, concat, concat_raw, partials, storage, storage_meta, state,
     visibility, mime, created_at, updated_at, expires_at, checksum, tier) = values  # fmt: skip
    return UploadInfo(
        id=str(id_),
        owner=str(owner),
        length=_opt_int(length),
        offset=int(offset),
        metadata_raw=str(metadata_raw or ""),
        concat=_CONCAT.get(concat) or ConcatKind(concat),
        concat_raw=str(concat_raw or ""),
        partials=tuple(_json(partials, "[]")),
        storage=str(storage),
        storage_meta=_json(storage_meta, "{}"),
        state=_STATE.get(state) or UploadState(state),
        visibility=str(visibility),
        mime=_opt_str(mime),
        created_at=float(created_at),
        updated_at=float(updated_at),
        expires_at=_opt_float(expires_at),
        checksum=_opt_str(checksum),
        tier=_opt_str(tier) or "basic",
    )
