"""In-memory :class:`StateStore` for unit tests and single-process experiments."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tusd_py.core import errors
from tusd_py.core.models import ConcatKind, PartRecord, UploadInfo, UploadState, keeps_expiry
from tusd_py.state.base import UPDATABLE_FIELDS
from tusd_py.state.rules import OffsetCommit


class MemoryStateStore:
    """Keeps records in dicts; every operation is atomic on the event loop."""

    def __init__(self) -> None:
        self._uploads: dict[str, UploadInfo] = {}
        self._parts: dict[str, dict[int, PartRecord]] = {}
        self._keys: dict[tuple[str, str], tuple[str, float]] = {}

    def _require(self, upload_id: str) -> UploadInfo:
        info = self._uploads.get(upload_id)
        if info is None:
            raise errors.UploadNotFound()
        return info

    async def create(self, info: UploadInfo) -> None:
        if info.id in self._uploads:
            raise ValueError(f"upload {info.id} exists")
        self._uploads[info.id] = info

    async def get(self, upload_id: str) -> UploadInfo | None:
        return self._uploads.get(upload_id)

    async def commit_offset(
        self,
        upload_id: str,
        expected: int,
        new: int,
        *,
        updated_at: float,
        expires_at: float | None,
    ) -> UploadInfo:
        commit = OffsetCommit(expected, new, updated_at, expires_at)
        info = commit.decide(self._uploads.get(upload_id))
        self._uploads[upload_id] = info
        return info

    async def reset_offset(self, upload_id: str, offset: int) -> UploadInfo:
        info = self._require(upload_id).replace(offset=offset)
        self._uploads[upload_id] = info
        return info

    async def update(self, upload_id: str, changes: Mapping[str, Any]) -> UploadInfo:
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise KeyError(f"not updatable: {sorted(unknown)}")
        info = self._require(upload_id).replace(**changes)
        self._uploads[upload_id] = info
        return info

    async def delete(self, upload_id: str) -> None:
        self._uploads.pop(upload_id, None)
        self._parts.pop(upload_id, None)

    async def list_expired(self, now: float, limit: int) -> Sequence[UploadInfo]:
        found = [
            i
            for i in self._uploads.values()
            if keeps_expiry(i) and i.expires_at is not None and i.expires_at < now
        ]
        found.sort(key=lambda i: (i.expires_at or 0.0, i.id))
        return found[:limit]

    async def purge_tombstones(self, before: float, limit: int) -> int:
        doomed = [
            i.id for i in self._uploads.values() if i.state is UploadState.EXPIRED and i.updated_at < before
        ][:limit]
        for upload_id in doomed:
            await self.delete(upload_id)
        return len(doomed)

    async def list_uploads(
        self,
        *,
        owner: str | None,
        after: tuple[float, str] | None,
        limit: int,
        state: str | None = None,
        visibility: str | None = None,
        include_partials: bool = True,
    ) -> Sequence[UploadInfo]:
        rows = sorted(self._uploads.values(), key=lambda i: (i.created_at, i.id))
        out = []
        for info in rows:
            if owner is not None and info.owner != owner:
                continue
            if after is not None and (info.created_at, info.id) <= after:
                continue
            if state is not None and info.state.value != state:
                continue
            if visibility is not None and info.visibility != visibility:
                continue
            if not include_partials and info.concat is ConcatKind.PARTIAL:
                continue
            out.append(info)
            if len(out) >= limit:
                break
        return out

    async def list_ids(self, after: str, limit: int) -> Sequence[str]:
        return sorted(i for i in self._uploads if i > after)[:limit]

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        self._parts.setdefault(upload_id, {})[part.number] = part

    async def list_parts(self, upload_id: str) -> Sequence[PartRecord]:
        parts = self._parts.get(upload_id, {})
        return [parts[n] for n in sorted(parts)]

    async def delete_parts(self, upload_id: str, first: int = 1) -> None:
        parts = self._parts.get(upload_id)
        if parts is None:
            return
        for number in [n for n in parts if n >= first]:
            del parts[number]
        if not parts:
            del self._parts[upload_id]

    async def get_idempotency_key(self, owner: str, key: str, now: float) -> str | None:
        bound = self._keys.get((owner, key))
        return bound[0] if bound is not None and bound[1] > now else None

    async def claim_idempotency_key(
        self, owner: str, key: str, upload_id: str, *, now: float, expires_at: float
    ) -> str:
        current = await self.get_idempotency_key(owner, key, now)
        if current is not None:
            return current
        self._keys[(owner, key)] = (upload_id, expires_at)
        return upload_id

    async def release_idempotency_key(self, owner: str, key: str, upload_id: str) -> None:
        bound = self._keys.get((owner, key))
        if bound is not None and bound[0] == upload_id:
            del self._keys[(owner, key)]

    async def purge_idempotency_keys(self, now: float, limit: int) -> int:
        doomed = [k for k, (_, expires_at) in self._keys.items() if expires_at <= now][:limit]
        for k in doomed:
            del self._keys[k]
        return len(doomed)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
