"""Redis :class:`StateStore` for several instances sharing one Redis.

The key layout, the Lua scripts and the flat encoding of records are in
:mod:`tusd_py.state.redis_layout`. Every write that changes a record is one
script, so readers never see a record without its index entries. The offset
compare-and-set applies the one guard of :mod:`tusd_py.state.rules`: its
requirements go to the script as data, and a refusal is named by the rule
from the record the script saw.

Redis must be persistent (``appendonly yes``) when it holds upload records.
Every Redis failure becomes :class:`errors.StateStoreError` (503).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from tusd_py.core import errors
from tusd_py.core.models import ConcatKind, PartRecord, UploadInfo, UploadState, keeps_expiry
from tusd_py.state import codec
from tusd_py.state import redis_layout as layout
from tusd_py.state.base import UPDATABLE_FIELDS
from tusd_py.state.redis_errors import map_redis_errors, text
from tusd_py.state.rules import OffsetCommit


class RedisStateStore:
    """Upload records in Redis (see the module docstring for the layout)."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "tusd-py:") -> None:
        self._redis = redis
        self._p = prefix
        self._create = redis.register_script(layout.CREATE)
        self._update = redis.register_script(layout.UPDATE)
        self._delete = redis.register_script(layout.DELETE)
        self._claim = redis.register_script(layout.CLAIM)
        self._release = redis.register_script(layout.RELEASE)

    # --- keys ----------------------------------------------------------------

    def _upload_key(self, upload_id: str) -> str:
        return f"{self._p}upload:{upload_id}"

    def _parts_key(self, upload_id: str) -> str:
        return f"{self._p}parts:{upload_id}"

    def _owner_key(self, owner: str) -> str:
        return f"{self._p}owner:{owner}"

    @property
    def _ids(self) -> str:
        return f"{self._p}ids"

    @property
    def _created(self) -> str:
        return f"{self._p}created"

    @property
    def _expiry(self) -> str:
        return f"{self._p}expiry"

    @property
    def _tombs(self) -> str:
        return f"{self._p}tombs"

    # --- records ---------------------------------------------------------------

    async def create(self, info: UploadInfo) -> None:
        pairs: list[str] = []
        for name in codec.FIELDS:
            pairs += [name, layout.flat(name, getattr(info, name))]
        keys = [
            self._upload_key(info.id),
            self._ids,
            self._created,
            self._owner_key(info.owner),
            self._expiry,
            self._tombs,
        ]
        args = [info.id, layout.created_key(info.created_at, info.id), *pairs]
        with map_redis_errors("create"):
            created = await self._create(keys=keys, args=args)
        if int(created) != 1:
            raise ValueError(f"upload {info.id} exists")

    async def get(self, upload_id: str) -> UploadInfo | None:
        with map_redis_errors("get"):
            raw = await self._redis.hgetall(self._upload_key(upload_id))
        return layout.record(raw)

    async def _run_update(
        self,
        operation: str,
        upload_id: str,
        changes: Mapping[str, Any],
        *,
        requires: Mapping[str, Any] | None = None,
    ) -> tuple[bool, UploadInfo | None]:
        """Run :data:`layout.UPDATE`: ``(applied, record after the call)``; the
        record is None when missing. Writes only if ``requires`` all hold."""
        args = [upload_id, str(len(requires or {}))]
        for name, value in [*(requires or {}).items(), *changes.items()]:
            args += [name, layout.flat(name, value)]
        keys = [self._upload_key(upload_id), self._expiry, self._tombs]
        with map_redis_errors(operation):
            reply = await self._update(keys=keys, args=args)
        status = text(reply[0])
        if status == "missing":
            return False, None
        return status == "ok", layout.record(reply[1])

    async def _change(self, operation: str, upload_id: str, changes: Mapping[str, Any]) -> UploadInfo:
        applied, info = await self._run_update(operation, upload_id, changes)
        if not applied or info is None:
            raise errors.UploadNotFound()
        return info

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
        applied, info = await self._run_update(
            "commit_offset", upload_id, commit.changes, requires=commit.requires
        )
        if applied and info is not None:
            return info
        # The script saw `info` atomically and refused: the rule names why.
        raise commit.refused(info)

    async def reset_offset(self, upload_id: str, offset: int) -> UploadInfo:
        if offset < 0:
            raise ValueError("an offset is never negative")
        return await self._change("reset_offset", upload_id, {"offset": offset})

    async def update(self, upload_id: str, changes: Mapping[str, Any]) -> UploadInfo:
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise KeyError(f"not updatable: {sorted(unknown)}")
        return await self._change("update", upload_id, changes)

    async def _delete_if(self, upload_id: str, state: str) -> bool:
        with map_redis_errors("delete"):
            owner = text(await self._redis.hget(self._upload_key(upload_id), "owner"))
            keys = [
                self._upload_key(upload_id),
                self._parts_key(upload_id),
                self._ids,
                self._created,
                self._owner_key(owner or ""),
                self._expiry,
                self._tombs,
            ]
            deleted = await self._delete(keys=keys, args=[upload_id, state])
        return int(deleted) == 1

    async def delete(self, upload_id: str) -> None:
        await self._delete_if(upload_id, "")

    # --- scans -------------------------------------------------------------------

    async def _load_many(self, ids: Sequence[str], operation: str) -> list[UploadInfo]:
        if not ids:
            return []
        with map_redis_errors(operation):
            async with self._redis.pipeline(transaction=False) as pipe:
                for upload_id in ids:
                    pipe.hgetall(self._upload_key(upload_id))
                replies = await pipe.execute()
        return [info for info in (layout.record(r) for r in replies) if info is not None]

    async def list_expired(self, now: float, limit: int) -> Sequence[UploadInfo]:
        if limit <= 0:
            return []
        with map_redis_errors("list_expired"):
            raw = await self._redis.zrangebyscore(self._expiry, "-inf", f"({now!r}", start=0, num=limit)
        infos = await self._load_many([str(text(x)) for x in raw], "list_expired")
        return [i for i in infos if keeps_expiry(i) and i.expires_at is not None and i.expires_at < now]

    async def purge_tombstones(self, before: float, limit: int) -> int:
        if limit <= 0:
            return 0
        with map_redis_errors("purge_tombstones"):
            raw = await self._redis.zrangebyscore(self._tombs, "-inf", f"({before!r}", start=0, num=limit)
        purged = 0
        for upload_id in (str(text(x)) for x in raw):
            if await self._delete_if(upload_id, UploadState.EXPIRED.value):
                purged += 1
        return purged

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
        index = self._created if owner is None else self._owner_key(owner)
        low = "-" if after is None else "(" + layout.created_key(after[0], after[1])
        out: list[UploadInfo] = []
        page = max(limit, layout.PAGE) if (state or visibility or not include_partials) else limit
        # Bounded: each page moves the cursor forward by `page` members.
        for _ in range(1_000_000):
            if len(out) >= limit or page <= 0:
                break
            with map_redis_errors("list_uploads"):
                members = [str(text(m)) for m in await self._redis.zrangebylex(index, low, "+", 0, page)]
            if not members:
                break
            low = "(" + members[-1]
            ids = [m.split(":", 1)[1] for m in members]
            for info in await self._load_many(ids, "list_uploads"):
                if owner is not None and info.owner != owner:
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
            if len(members) < page:
                break
        return out

    async def list_ids(self, after: str, limit: int) -> Sequence[str]:
        if limit <= 0:
            return []
        low = "(" + after if after else "-"
        with map_redis_errors("list_ids"):
            raw = await self._redis.zrangebylex(self._ids, low, "+", 0, limit)
        return [str(text(x)) for x in raw]

    # --- parts ---------------------------------------------------------------------

    async def put_part(self, upload_id: str, part: PartRecord) -> None:
        with map_redis_errors("put_part"):
            await self._redis.hset(
                self._parts_key(upload_id), str(part.number), json.dumps([part.etag, part.size])
            )

    async def list_parts(self, upload_id: str) -> Sequence[PartRecord]:
        with map_redis_errors("list_parts"):
            raw = await self._redis.hgetall(self._parts_key(upload_id))
        parts = []
        for number, value in layout.decode_hash(raw).items():
            etag, size = json.loads(value)
            parts.append(PartRecord(int(number), str(etag), int(size)))
        parts.sort(key=lambda p: p.number)
        return parts

    async def delete_parts(self, upload_id: str, first: int = 1) -> None:
        key = self._parts_key(upload_id)
        with map_redis_errors("delete_parts"):
            if first <= 1:
                await self._redis.delete(key)
                return
            numbers = [n for n in (str(text(k)) for k in await self._redis.hkeys(key)) if int(n) >= first]
            if numbers:
                await self._redis.hdel(key, *numbers)

    # --- idempotency keys (POST /index) ------------------------------------------------

    def _idem_key(self, owner: str, key: str) -> str:
        digest = hashlib.sha256(f"{owner}\0{key}".encode()).hexdigest()
        return f"{self._p}idem:{digest}"

    async def get_idempotency_key(self, owner: str, key: str, now: float) -> str | None:
        with map_redis_errors("get_idempotency_key"):
            raw = await self._redis.get(self._idem_key(owner, key))
        if raw is None:
            return None
        upload_id, expires_at = json.loads(raw)
        return str(upload_id) if float(expires_at) > now else None

    async def claim_idempotency_key(
        self, owner: str, key: str, upload_id: str, *, now: float, expires_at: float
    ) -> str:
        ttl_ms = max(1000, int((expires_at - now) * 1000))
        with map_redis_errors("claim_idempotency_key"):
            bound = await self._claim(
                keys=[self._idem_key(owner, key)], args=[upload_id, now, expires_at, ttl_ms]
            )
        return str(text(bound))

    async def release_idempotency_key(self, owner: str, key: str, upload_id: str) -> None:
        with map_redis_errors("release_idempotency_key"):
            await self._release(keys=[self._idem_key(owner, key)], args=[upload_id])

    async def purge_idempotency_keys(self, now: float, limit: int) -> int:
        """Redis expires bindings natively (their TTL)."""
        return 0

    # --- health ------------------------------------------------------------------------

    async def ping(self) -> None:
        with map_redis_errors("ping"):
            await self._redis.ping()

    async def close(self) -> None:
        """The shared client is closed by its owner (the server context)."""
        return None
