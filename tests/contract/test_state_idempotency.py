"""Contract: Idempotency-Key bindings of every StateStore (the ``store``
fixture of tests/contract/conftest.py: memory, SQLite, Redis)."""

from __future__ import annotations

import asyncio

import pytest

from tusd_py.state.base import StateStore


@pytest.mark.gen_test
async def test_claim_binds_and_first_claim_wins(store: StateStore) -> None:
    assert await store.get_idempotency_key("alice", "k", now=10.0) is None
    assert await store.claim_idempotency_key("alice", "k", "u1", now=10.0, expires_at=100.0) == "u1"
    assert await store.claim_idempotency_key("alice", "k", "u2", now=11.0, expires_at=100.0) == "u1"
    assert await store.get_idempotency_key("alice", "k", now=50.0) == "u1"
    # Keys are per owner.
    assert await store.claim_idempotency_key("bob", "k", "u3", now=11.0, expires_at=100.0) == "u3"


@pytest.mark.gen_test
async def test_expired_binding_is_invisible_and_replaced(store: StateStore) -> None:
    await store.claim_idempotency_key("alice", "k", "u1", now=0.0, expires_at=100.0)
    assert await store.get_idempotency_key("alice", "k", now=100.0) is None
    assert await store.claim_idempotency_key("alice", "k", "u2", now=100.0, expires_at=200.0) == "u2"
    assert await store.get_idempotency_key("alice", "k", now=150.0) == "u2"


@pytest.mark.gen_test
async def test_release_only_forgets_the_named_upload(store: StateStore) -> None:
    await store.claim_idempotency_key("alice", "k", "u1", now=0.0, expires_at=100.0)
    await store.release_idempotency_key("alice", "k", "other")
    assert await store.get_idempotency_key("alice", "k", now=1.0) == "u1"
    await store.release_idempotency_key("alice", "k", "u1")
    assert await store.get_idempotency_key("alice", "k", now=1.0) is None
    await store.release_idempotency_key("alice", "missing", "u1")


@pytest.mark.gen_test
async def test_concurrent_claims_have_one_winner(store: StateStore) -> None:
    results = await asyncio.gather(
        *(store.claim_idempotency_key("alice", "k", f"u{i}", now=0.0, expires_at=9.0) for i in range(20))
    )
    assert len(set(results)) == 1


@pytest.mark.gen_test
async def test_purge_removes_expired_bindings_only(store: StateStore) -> None:
    for i in range(5):
        await store.claim_idempotency_key("alice", f"old{i}", "u", now=0.0, expires_at=10.0)
    await store.claim_idempotency_key("alice", "new", "u", now=0.0, expires_at=1000.0)
    first = await store.purge_idempotency_keys(now=20.0, limit=3)
    second = await store.purge_idempotency_keys(now=20.0, limit=100)
    # Stores that purge themselves remove 3 then 2; stores with native expiry (Redis) report 0.
    assert (first, second) in ((3, 2), (0, 0))
    for i in range(5):
        assert await store.get_idempotency_key("alice", f"old{i}", now=20.0) is None
    assert await store.get_idempotency_key("alice", "new", now=20.0) == "u"
