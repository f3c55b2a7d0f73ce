"""Redis :class:`StateStore` for several instances sharing one Redis.

Key layout (``P`` is ``[redis] prefix``)::

    P upload:<id>     hash   the record (fields of tusd_py.state.codec, plus _ck)
    P parts:<id>      hash   part number -> JSON [etag, size]
    P ids             zset   every id, score 0            (list_ids, id order)
    P created         zset   every _ck, score 0           (list_uploads, everyone)
    P owner:<owner>   zset   the owner's _ck, score 0     (list_uploads, one owner)
    P expiry          zset   id scored by expires_at      (incomplete uploads, complete partials)
    P tombs           zset   id scored by updated_at      (expired tombstones only)
    P idem:<sha256>   string JSON [upload id, expires_at] of one (owner, Idempotency-Key),
                             with a native TTL of (expires_at - now) so Redis forgets it

``_ck`` is ``<16 hex digits>:<id>``: the digits encode ``created_at`` so that
byte order equals float order, hence ``ZRANGEBYLEX`` walks uploads by
``(created_at, id)`` and a cursor is simply "strictly after this member".

Every write that changes a record runs as one Lua script which also keeps the
indexes in step, so readers never see a record without its index entries.
The offset compare-and-set is such a script: of two concurrent calls with
the same expected offset exactly one matches, and a smaller offset is refused.

Redis must be persistent (``appendonly yes``) when it holds upload records.
Every Redis failure becomes :class:`errors.StateStoreError` (503).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from tusd_py.core import errors
from tusd_py.core.models import ConcatKind, PartRecord, UploadInfo, UploadState, keeps_expiry
from tusd_py.state import codec
from tusd_py.state.base import UPDATABLE_FIELDS
from tusd_py.state.redis_errors import map_redis_errors, text

#: Recomputes the expiry and tombstone index entries of one record.
_REINDEX = """
local function reindex(hkey, expiry, tombs, id)
  local v = redis.call('HMGET', hkey, 'state', 'expires_at', 'updated_at', 'concat')
  local expiring = v[1] == 'uploading' or (v[1] == 'complete' and v[4] == 'partial')
  if expiring and v[2] and v[2] ~= '' then
    redis.call('ZADD', expiry, v[2], id)
  else
    redis.call('ZREM', expiry, id)
  end
  if v[1] == 'expired' then
    redis.call('ZADD', tombs, v[3], id)
  else
    redis.call('ZREM', tombs, id)
  end
end
"""

#: KEYS: upload, ids, created, owner, expiry, tombs. ARGV: id, ck, field, value, ...
_CREATE = (
    _REINDEX
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], '_ck', ARGV[2], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[2])
redis.call('ZADD', KEYS[4], 0, ARGV[2])
reindex(KEYS[1], KEYS[5], KEYS[6], ARGV[1])
return 1
"""
)

#: KEYS: upload, expiry, tombs. ARGV: id, expected offset ('' = no CAS), new
#: offset ('' = unchanged), field, value, ...
#: Returns {'ok', HGETALL} | {'missing'} | {'mismatch', offset} | {'backwards', offset}.
_UPDATE = (
    _REINDEX
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
if ARGV[2] ~= '' then
  local current = redis.call('HGET', KEYS[1], 'offset')
  if current ~= ARGV[2] then return {'mismatch', current} end
  if tonumber(ARGV[3]) < tonumber(current) then return {'backwards', current} end
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'offset', ARGV[3]) end
if #ARGV > 3 then redis.call('HSET', KEYS[1], unpack(ARGV, 4)) end
reindex(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return {'ok', redis.call('HGETALL', KEYS[1])}
"""
)

#: KEYS: upload, parts, ids, created, owner, expiry, tombs. ARGV: id, required
#: state ('' = any). Returns 1 if a record was deleted.
_DELETE = """
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[2] ~= '' and state ~= ARGV[2] then return 0 end
local ck = redis.call('HGET', KEYS[1], '_ck')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('ZREM', KEYS[7], ARGV[1])
if ck then
  redis.call('ZREM', KEYS[4], ck)
  redis.call('ZREM', KEYS[5], ck)
end
if state then return 1 end
return 0
"""

#: ZRANGEBYLEX page size when filters may drop members.
_PAGE = 200


def sort_key(value: float) -> str:
    """16 hex digits whose byte order is the numeric order of ``value``."""
    bits: int = struct.unpack(">Q", struct.pack(">d", value + 0.0))[0]
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def created_key(created_at: float, upload_id: str) -> str:
    """The ``(created_at, id)`` ordering member of an upload."""
    return f"{sort_key(created_at)}:{upload_id}"


def _flat(name: str, value: Any) -> str:
    """A field as stored in the hash ('' for None, exact repr for floats)."""
    encoded = codec.encode_value(name, value)
    if encoded is None:
        return ""
    if isinstance(encoded, float):
        return repr(encoded)
    return str(encoded)


def _decode_hash(raw: Mapping[Any, Any] | Sequence[Any]) -> dict[str, str]:
    """A hash reply (dict, or flat list from a script) as ``{str: str}``."""
    if isinstance(raw, Mapping):
        return {str(text(k)): str(text(v)) for k, v in raw.items()}
    items = [str(text(x)) for x in raw]
    return dict(zip(items[::2], items[1::2], strict=True))


def _info(raw: Mapping[Any, Any] | Sequence[Any]) -> UploadInfo | None:
    row = _decode_hash(raw)
    if not row.get("id"):
        return None
    return codec.from_row(row)


_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  local bound = cjson.decode(current)
  if tonumber(bound[2]) > tonumber(ARGV[2]) then
    return bound[1]
  end
end
redis.call('SET', KEYS[1], cjson.encode({ARGV[1], tonumber(ARGV[3])}), 'PX', ARGV[4])
return ARGV[1]
"""

_RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisStateStore:
    """Upload records in Redis (see the module docstring for the layout)."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "tusd-py:") -> None:
        self._redis = redis
        self._p = prefix
        self._create = redis.register_script(_CREATE)
        self._update = redis.register_script(_UPDATE)
        self._delete = redis.register_script(_DELETE)
        self._claim = redis.register_script(_CLAIM)
        self._release = redis.register_script(_RELEASE)

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
            pairs += [name, _flat(name, getattr(info, name))]
        keys = [
            self._upload_key(info.id),
            self._ids,
            self._created,
            self._owner_key(info.owner),
            self._expiry,
            self._tombs,
        ]
        args = [info.id, created_key(info.created_at, info.id), *pairs]
        with map_redis_errors("create"):
            created = await self._create(keys=keys, args=args)
        if int(created) != 1:
            raise ValueError(f"upload {info.id} exists")

    async def get(self, upload_id: str) -> UploadInfo | None:
        with map_redis_errors("get"):
            raw = await self._redis.hgetall(self._upload_key(upload_id))
        return _info(raw)

    async def _run_update(
        self,
        operation: str,
        upload_id: str,
        *,
        expected: int | None = None,
        new: int | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> UploadInfo:
        pairs: list[str] = []
        for name, value in (changes or {}).items():
            pairs += [name, _flat(name, value)]
        keys = [self._upload_key(upload_id), self._expiry, self._tombs]
        args = [
            upload_id,
            "" if expected is None else str(expected),
            "" if new is None else str(new),
            *pairs,
        ]
        with map_redis_errors(operation):
            reply = await self._update(keys=keys, args=args)
        status = text(reply[0])
        if status == "missing":
            raise errors.UploadNotFound()
        if status == "mismatch":
            raise errors.OffsetMismatch(f"offset is {text(reply[1])}, expected {expected}")
        if status == "backwards":
            raise ValueError(f"an offset never moves backwards (stored {text(reply[1])}, new {new})")
        info = _info(reply[1])
        if info is None:
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
        if new < expected:
            raise ValueError("an offset never moves backwards")
        return await self._run_update(
            "commit_offset",
            upload_id,
            expected=expected,
            new=new,
            changes={"updated_at": updated_at, "expires_at": expires_at},
        )

    async def reset_offset(self, upload_id: str, offset: int) -> UploadInfo:
        if offset < 0:
            raise ValueError("an offset is never negative")
        return await self._run_update("reset_offset", upload_id, new=offset)

    async def update(self, upload_id: str, changes: Mapping[str, Any]) -> UploadInfo:
        unknown = set(changes) - UPDATABLE_FIELDS
        if unknown:
            raise KeyError(f"not updatable: {sorted(unknown)}")
        return await self._run_update("update", upload_id, changes=changes)

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
        return [info for info in (_info(r) for r in replies) if info is not None]

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
        low = "-" if after is None else "(" + created_key(after[0], after[1])
        out: list[UploadInfo] = []
        page = max(limit, _PAGE) if (state or visibility or not include_partials) else limit
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
        for number, value in _decode_hash(raw).items():
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
