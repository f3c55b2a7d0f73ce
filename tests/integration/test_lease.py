"""A PATCH whose Redis lock lease may have run out stops writing (no two writers)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tusd_py.auth.authenticator import LOCAL_PRINCIPAL
from tusd_py.core import errors
from tusd_py.core.append import AppendRequest
from tusd_py.locking.redis import RedisLocker
from tusd_py.ops.context import AppContext


@pytest.fixture
def config_overrides(redis_url: str) -> dict[str, Any]:
    return {"redis.url": redis_url, "redis.prefix": f"lease-{uuid.uuid4().hex[:10]}:", "redis.lock_ttl": 5.0}


@pytest.mark.gen_test(timeout=30)
async def test_a_writer_whose_lease_ran_out_is_refused_and_keeps_its_bytes(ctx: AppContext) -> None:
    info = await ctx.service.create(LOCAL_PRINCIPAL, length=100)
    session = await ctx.service.begin_append(
        LOCAL_PRINCIPAL, info.id, AppendRequest(offset=0, content_length=30), lambda: None
    )
    await session.write(b"a" * 10)
    locker = ctx.composer.locker
    assert isinstance(locker, RedisLocker)
    locker.holders[info.id].valid_until = 0.0  # as if this process had stalled past the TTL
    with pytest.raises(errors.StateStoreError) as caught:
        await session.write(b"b" * 10)
    assert caught.value.status == 503
    saved = await session.abort()
    assert saved.offset == 10
    disk = ctx.composer.storage("disk")
    assert b"".join([block async for block in disk.read(saved, 0, 9)]) == b"a" * 10
    assert (await ctx.composer.state.get(info.id)).offset == 10  # type: ignore[union-attr]
