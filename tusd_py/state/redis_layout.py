"""How upload records live in Redis: key layout, Lua scripts, flat encoding.

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
The scripts decide nothing about offsets: :data:`UPDATE` compares the fields
it is given (the requirements of :class:`tusd_py.state.rules.OffsetCommit`)
and writes only if all match, atomically.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from tusd_py.core.models import UploadInfo
from tusd_py.state import codec
from tusd_py.state.redis_errors import text

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
CREATE = (
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

#: KEYS: upload, expiry, tombs. ARGV: id, n, n pairs (field, required value),
#: then pairs (field, new value). Writes only if every required field holds its
#: value (a compare-and-set; it compares, the rule lives in Python).
#: Returns {'ok', HGETALL} | {'missing'} | {'refused', HGETALL}.
UPDATE = (
    _REINDEX
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing'} end
local n = tonumber(ARGV[2])
for i = 3, 2 + 2 * n, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) ~= ARGV[i + 1] then
    return {'refused', redis.call('HGETALL', KEYS[1])}
  end
end
if #ARGV > 2 + 2 * n then redis.call('HSET', KEYS[1], unpack(ARGV, 3 + 2 * n)) end
reindex(KEYS[1], KEYS[2], KEYS[3], ARGV[1])
return {'ok', redis.call('HGETALL', KEYS[1])}
"""
)

#: KEYS: upload, parts, ids, created, owner, expiry, tombs. ARGV: id, required
#: state ('' = any). Returns 1 if a record was deleted.
DELETE = """
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
PAGE = 200


def sort_key(value: float) -> str:
    """16 hex digits whose byte order is the numeric order of ``value``."""
    bits: int = struct.unpack(">Q", struct.pack(">d", value + 0.0))[0]
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | (1 << 63)
    return f"{bits:016x}"


def created_key(created_at: float, upload_id: str) -> str:
    """The ``(created_at, id)`` ordering member of an upload."""
    return f"{sort_key(created_at)}:{upload_id}"


def flat(name: str, value: Any) -> str:
    """A field as stored in the hash ('' for None, exact repr for floats)."""
    encoded = codec.encode_value(name, value)
    if encoded is None:
        return ""
    if isinstance(encoded, float):
        return repr(encoded)
    return str(encoded)


def decode_hash(raw: Mapping[Any, Any] | Sequence[Any]) -> dict[str, str]:
    """A hash reply (dict, or flat list from a script) as ``{str: str}``."""
    if isinstance(raw, Mapping):
        return {str(text(k)): str(text(v)) for k, v in raw.items()}
    items = [str(text(x)) for x in raw]
    return dict(zip(items[::2], items[1::2], strict=True))


def record(raw: Mapping[Any, Any] | Sequence[Any]) -> UploadInfo | None:
    """The record in a hash reply, or None for an empty (missing) hash."""
    row = decode_hash(raw)
    if not row.get("id"):
        return None
    return codec.from_row(row)


#: KEYS: idem key. ARGV: upload id, now, expires_at, TTL in ms. Binds the key
#: unless a live binding exists; returns the upload id bound after the call.
CLAIM = """
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

#: KEYS: idem key. ARGV: upload id. Forgets the binding if it names the id.
RELEASE = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current)[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
"""
